import re, sys, os
sys.path.insert(0, '.')
from extract import udp_payloads
def secrets(log):
    out = {}; name = None
    for line in open(log):
        m = re.match(r'\d+\[IKE\] (.+?) => (\d+) bytes @', line)
        if m:
            name = m.group(1); out.setdefault(name, ''); cur = name
            continue
        m = re.match(r'\d+\[IKE\]\s+\d+: ((?:[0-9A-F]{2} )+)', line)
        if m and name:
            out[name] += m.group(1).replace(' ', '').lower()
        else:
            name = None
    return out
run, dest, names, desc = sys.argv[1], sys.argv[2], sys.argv[3].split(','), sys.argv[4]
os.makedirs(dest, exist_ok=True)
pk = udp_payloads(run + '/cap.pcap')
assert len(pk) == len(names), (len(pk), names)
for (s, d, sp, dp, p), n in zip(pk, names):
    open(f'{dest}/{n}.bin', 'wb').write(p)
sec = secrets(run + '/a/charon.log')
keep = ['shared Diffie Hellman secret', 'SKEYSEED', 'Sk_d secret', 'Sk_ai secret', 'Sk_ar secret', 'Sk_ei secret', 'Sk_er secret', 'Sk_pi secret', 'Sk_pr secret']
with open(f'{dest}/keys.txt', 'w') as f:
    f.write(desc + '\n')
    f.write('# name = hex (from charon log level ike=4 of the initiator); PSK = "capture-test-psk"\n')
    for k in keep:
        if k in sec:
            f.write(f'{k.replace(" secret","").replace("shared Diffie Hellman","dh_shared").lower()} = {sec[k]}\n')
print(open(f'{dest}/keys.txt').read())
