/*
 * smm_cidr -- IPv4/IPv6 address ranges ("10.0.0.0/8", "::1", "192.0.2.7").
 *
 * Plain values; no ownership.  Thread-safe.
 */
#ifndef SMM_CIDR_H
#define SMM_CIDR_H

struct smm_cidr {
    int family;             /* AF_INET or AF_INET6 */
    unsigned char addr[16]; /* network byte order, host bits cleared */
    int bits;               /* prefix length */
};

int smm_cidr_parse(const char *, struct smm_cidr *);
int smm_cidr_match(const struct smm_cidr *, const char *);

#endif
