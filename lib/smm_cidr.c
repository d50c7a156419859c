/*
 * smm_cidr -- address range parsing and matching; see smm_cidr.h.
 */
#include "config.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "smm_cidr.h"

/* Parse an address (strips "IPv6:" and brackets) into family + 16 bytes. */
static int
addr_parse(const char *s, int *family, unsigned char *addr)
{
    char tmp[64];
    size_t len;

    if (strncasecmp(s, "IPv6:", 5) == 0)
        s += 5;
    len = strlen(s);
    if (len >= sizeof(tmp))
        return -1;
    if (s[0] == '[' && len > 2 && s[len - 1] == ']') {
        memcpy(tmp, s + 1, len - 2);
        tmp[len - 2] = '\0';
    } else {
        memcpy(tmp, s, len + 1);
    }
    memset(addr, 0, 16);
    if (inet_pton(AF_INET, tmp, addr) == 1) {
        *family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, tmp, addr) == 1) {
        /* an IPv4-mapped IPv6 address is matched as IPv4 */
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0,    0,
                                                 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(addr, mapped, 12) == 0) {
            memmove(addr, addr + 12, 4);
            memset(addr + 4, 0, 12);
            *family = AF_INET;
        } else {
            *family = AF_INET6;
        }
        return 0;
    }
    return -1;
}

/* Returns 0 and fills *c, or -1 when s is not an address or range. */
int
smm_cidr_parse(const char *s, struct smm_cidr *c)
{
    char tmp[80];
    char *slash, *end;
    long bits;
    int max, i;

    if (strlen(s) >= sizeof(tmp))
        return -1;
    strcpy(tmp, s);
    if ((slash = strchr(tmp, '/')) != NULL)
        *slash++ = '\0';
    if (addr_parse(tmp, &c->family, c->addr) != 0)
        return -1;
    max = c->family == AF_INET ? 32 : 128;
    if (slash != NULL) {
        if (*slash == '\0')
            return -1;
        bits = strtol(slash, &end, 10);
        if (*end != '\0' || bits < 0 || bits > max)
            return -1;
        c->bits = (int)bits;
    } else {
        c->bits = max;
    }
    for (i = c->bits; i < 128; i++)
        c->addr[i / 8] &= (unsigned char)~(0x80 >> (i % 8));
    return 0;
}

/* Does the textual address addr fall in c? */
int
smm_cidr_match(const struct smm_cidr *c, const char *addr)
{
    unsigned char a[16];
    int family, i;

    if (addr == NULL || addr_parse(addr, &family, a) != 0 ||
        family != c->family)
        return 0;
    for (i = 0; i < c->bits; i++) {
        int m = 0x80 >> (i % 8);
        if ((a[i / 8] & m) != (c->addr[i / 8] & m))
            return 0;
    }
    return 1;
}
