# trim the encryptedContent of a definite-length EnvelopedData to N bytes
import sys, base64
def hdr(b, i):
    tag = b[i]; l = b[i+1]; j = i+2
    if l & 0x80:
        n = l & 0x7f; l = int.from_bytes(b[j:j+n], 'big'); j += n
    return tag, j, l          # tag, content start, length
def enc(tag, content):
    n = len(content)
    if n < 128: L = bytes([n])
    else:
        nb = n.to_bytes((n.bit_length()+7)//8, 'big'); L = bytes([0x80|len(nb)]) + nb
    return bytes([tag]) + L + content
def children(b, s, l):
    out = []; i = s
    while i < s+l:
        t, cs, cl = hdr(b, i); out.append((t, b[i:cs+cl], cs, cl)); i = cs+cl
    return out
b = open(sys.argv[1],'rb').read(); N = int(sys.argv[2])
t0, s0, l0 = hdr(b, 0); ci = children(b, s0, l0)          # OID, [0]
t1, s1, l1 = hdr(b, ci[1][2]) ; ed = ci[1]; edseq = children(b, ed[2], ed[3])[0]
parts = children(b, edseq[2], edseq[3])                      # version, ris, eci
eci = parts[2]; ep = children(b, eci[2], eci[3])            # oid, alg, [0]
ec = ep[2]; newec = enc(ec[0], b[ec[2]:ec[2]+N])
neweci = enc(eci[0], ep[0][1] + ep[1][1] + newec)
newed = enc(edseq[0], parts[0][1] + parts[1][1] + neweci)
new = enc(t0, ci[0][1] + enc(ci[1][0], newed))
sys.stdout.buffer.write(new)
