/*
 * smm_crlf -- a GMime filter that ends every line in CRLF.
 *
 * It does what GMime's unix2dos filter does (a LF not preceded by a CR
 * gets one; nothing else changes), but input whose lines already end in
 * CRLF -- what the MTA hands over -- passes through without a copy, the
 * line ends found with memchr() instead of a loop over every byte.
 * smm_crlf_filter_new() returns a new reference (g_object_unref); like any
 * GMime filter it is used by one thread at a time.
 */
#ifndef SMM_CRLF_H
#define SMM_CRLF_H

#include <gmime/gmime.h>

GMimeFilter *smm_crlf_filter_new(void);

#endif
