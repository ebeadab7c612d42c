import struct, sys, os
def udp_payloads(path):
    d = open(path,'rb').read()
    magic, = struct.unpack('<I', d[:4]); assert magic == 0xa1b2c3d4, hex(magic)
    link, = struct.unpack('<I', d[20:24])
    off = 24; out = []
    while off < len(d):
        ts, tu, incl, orig = struct.unpack('<IIII', d[off:off+16]); off += 16
        pkt = d[off:off+incl]; off += incl
        if link == 1: pkt = pkt[14:]
        ihl = (pkt[0] & 15) * 4
        src = '.'.join(map(str, pkt[12:16])); dst = '.'.join(map(str, pkt[16:20]))
        udp = pkt[ihl:]
        sport, dport, ulen = struct.unpack('>HHH', udp[:6])
        payload = udp[8:ulen]
        if dport == 4500 or sport == 4500:
            assert payload[:4] == b'\0\0\0\0'; payload = payload[4:]
        out.append((src, dst, sport, dport, payload))
    return out
if __name__ == "__main__":
  for path in sys.argv[1:]:
    for i, (s, d, sp, dp, p) in enumerate(udp_payloads(path)):
        print(path, i, s, d, sp, dp, len(p), p[16:20].hex())
