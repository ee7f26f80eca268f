#!/usr/bin/env python3
"""Does DDS security work with the installed ROS: is an unauthorised decision publisher refused?

Builds an SROS2-layout keystore with plain ``openssl`` (no sros2 needed): one CA for identity
and permissions, a signed governance (join and topic access control on, RTPS encrypted) and,
for the enclaves ``/store/review``, ``/store/cart`` and ``/store/intruder``, an identity
certificate and signed permissions that let only ``/store/review`` publish
``review_decisions`` and only ``/store/cart`` subscribe to it. Then it starts, each in its own
process with ``ROS_SECURITY_ENABLE=true``, ``ROS_SECURITY_STRATEGY=Enforce`` and the enclave set:
a cart-side listener, the review publisher and the intruder publisher, and prints which
decisions reached the listener. Secure: the listener gets the review's decisions and none of
the intruder's (whose publisher should not even be created). Exit 0 only then.

    python tools/dds_security_check.py --keystore /tmp/store_keystore

On the PyPI wheels of this workspace the first secure process fails (see docs/SECURITY.md):
their Fast DDS is built without the security plugins.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import random
import shutil
import subprocess
import sys
import textwrap
import time

NS = '/store'
ENCLAVES = {
    # enclave: (topics it may publish, topics it may subscribe) without the rt/ prefix
    '/store/review': (['store/review_decisions'],
                      ['store/review_decision_acks', 'store/review_requests']),
    '/store/cart': (['store/review_decision_acks', 'store/receipts'],
                    ['store/review_decisions']),
    '/store/intruder': ([], []),
}
# every ROS node needs these (rosout, parameter events, the graph cache, its own services)
COMMON_PUBLISH = ['rt/rosout', 'rt/parameter_events', 'ros_discovery_info']
COMMON_SUBSCRIBE = ['rt/parameter_events', 'ros_discovery_info']

GOVERNANCE = """<?xml version="1.0" encoding="UTF-8"?>
<dds xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
     xsi:noNamespaceSchemaLocation="http://www.omg.org/spec/DDS-SECURITY/20170901/omg_shared_ca_governance.xsd">
  <domain_access_rules>
    <domain_rule>
      <domains><id_range><min>0</min><max>232</max></id_range></domains>
      <allow_unauthenticated_participants>false</allow_unauthenticated_participants>
      <enable_join_access_control>true</enable_join_access_control>
      <discovery_protection_kind>ENCRYPT</discovery_protection_kind>
      <liveliness_protection_kind>ENCRYPT</liveliness_protection_kind>
      <rtps_protection_kind>SIGN</rtps_protection_kind>
      <topic_access_rules>
        <topic_rule>
          <topic_expression>*</topic_expression>
          <enable_discovery_protection>true</enable_discovery_protection>
          <enable_liveliness_protection>true</enable_liveliness_protection>
          <enable_read_access_control>true</enable_read_access_control>
          <enable_write_access_control>true</enable_write_access_control>
          <metadata_protection_kind>ENCRYPT</metadata_protection_kind>
          <data_protection_kind>ENCRYPT</data_protection_kind>
        </topic_rule>
      </topic_access_rules>
    </domain_rule>
  </domain_access_rules>
</dds>
"""


def permissions_xml(enclave: str, publish: list[str], subscribe: list[str]) -> str:
    node = enclave.rstrip('/')
    own = [f'rq{node}/*', f'rr{node}/*']        # the node's parameter services
    pubs = ''.join(f'<topic>{t}</topic>' for t in
                   [f'rt/{t}' for t in publish] + COMMON_PUBLISH + own)
    subs = ''.join(f'<topic>{t}</topic>' for t in
                   [f'rt/{t}' for t in subscribe] + COMMON_SUBSCRIBE + own)
    return textwrap.dedent(f"""\
        <?xml version="1.0" encoding="UTF-8"?>
        <dds xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
             xsi:noNamespaceSchemaLocation="http://www.omg.org/spec/DDS-SECURITY/20170901/omg_shared_ca_permissions.xsd">
          <permissions>
            <grant name="{enclave}">
              <subject_name>CN={enclave}</subject_name>
              <validity><not_before>2025-01-01T00:00:00</not_before>
                <not_after>2035-01-01T00:00:00</not_after></validity>
              <allow_rule>
                <domains><id_range><min>0</min><max>232</max></id_range></domains>
                <publish><topics>{pubs}</topics></publish>
                <subscribe><topics>{subs}</topics></subscribe>
              </allow_rule>
              <default>DENY</default>
            </grant>
          </permissions>
        </dds>
        """)


def openssl(*args: str, cwd: pathlib.Path) -> None:
    done = subprocess.run(['openssl', *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f'openssl {" ".join(args)}: {done.stderr.strip()}')


def build_keystore(root: pathlib.Path) -> None:
    """The layout `ros2 security create_keystore` + `create_enclave` make, by hand."""
    if root.exists():
        shutil.rmtree(root)
    (root / 'public').mkdir(parents=True)
    (root / 'private').mkdir()
    enclaves = root / 'enclaves'
    enclaves.mkdir()
    openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'private/ca.key.pem',
            cwd=root)
    openssl('req', '-new', '-x509', '-sha256', '-days', '3650', '-key', 'private/ca.key.pem',
            '-out', 'public/ca.cert.pem', '-subj', '/CN=sros2testCA', cwd=root)
    for name in ('identity_ca', 'permissions_ca'):
        (root / 'public' / f'{name}.cert.pem').symlink_to('ca.cert.pem')
        (root / 'private' / f'{name}.key.pem').symlink_to('ca.key.pem')
    (enclaves / 'governance.xml').write_text(GOVERNANCE)
    sign = ('smime', '-sign', '-text', '-signer', '../public/ca.cert.pem', '-inkey',
            '../private/ca.key.pem')
    openssl(*sign, '-in', 'governance.xml', '-out', 'governance.p7s', cwd=enclaves)
    for enclave, (pub, sub) in ENCLAVES.items():
        d = enclaves / enclave.lstrip('/')
        d.mkdir(parents=True)
        rel = os.path.relpath(root, d)
        openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'key.pem', cwd=d)
        subject = '/CN=' + enclave.replace('/', '\\/')          # openssl escapes / in a value
        openssl('req', '-new', '-key', 'key.pem', '-out', 'req.csr', '-subj', subject, cwd=d)
        openssl('x509', '-req', '-sha256', '-days', '3650', '-in', 'req.csr', '-CA',
                f'{rel}/public/ca.cert.pem', '-CAkey', f'{rel}/private/ca.key.pem',
                '-CAcreateserial', '-out', 'cert.pem', cwd=d)
        (d / 'permissions.xml').write_text(permissions_xml(enclave, pub, sub))
        openssl('smime', '-sign', '-text', '-signer', f'{rel}/public/ca.cert.pem', '-inkey',
                f'{rel}/private/ca.key.pem', '-in', 'permissions.xml', '-out',
                'permissions.p7s', cwd=d)
        for name in ('identity_ca', 'permissions_ca'):
            shutil.copy(root / 'public' / 'ca.cert.pem', d / f'{name}.cert.pem')
        shutil.copy(enclaves / 'governance.p7s', d / 'governance.p7s')


CHILD = r'''
import sys, time
import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from store_interfaces.msg import ReviewDecision
role, seconds = sys.argv[1], float(sys.argv[2])
qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
rclpy.init()
node = rclpy.create_node(role, namespace='/store')
print(f'{role}: participant created', flush=True)
got = []
if role == 'cart':
    node.create_subscription(ReviewDecision, 'review_decisions',
                             lambda m: got.append(m.reviewer_id), qos)
else:
    pub = node.create_publisher(ReviewDecision, 'review_decisions', qos)
    print(f'{role}: publisher created', flush=True)
    node.create_timer(0.2, lambda: pub.publish(ReviewDecision(request_id='review/x',
                                                               reviewer_id=role)))
end = time.monotonic() + seconds
while time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.1)
if role == 'cart':
    print('cart received from: ' + ','.join(sorted(set(got))) + f' ({len(got)} messages)',
          flush=True)
node.destroy_node()
rclpy.shutdown()
'''


def start(role: str, enclave: str, keystore: pathlib.Path, env: dict, seconds: float):
    e = dict(env, ROS_SECURITY_KEYSTORE=str(keystore), ROS_SECURITY_ENABLE='true',
             ROS_SECURITY_STRATEGY='Enforce', ROS_SECURITY_ENCLAVE_OVERRIDE=enclave)
    return subprocess.Popen([sys.executable, '-c', CHILD, role, str(seconds)], env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--keystore', default='/tmp/store_keystore')
    ap.add_argument('--seconds', type=float, default=6.0)
    args = ap.parse_args()
    keystore = pathlib.Path(args.keystore)
    build_keystore(keystore)
    print(f'keystore built with openssl in {keystore}: enclaves {", ".join(ENCLAVES)}')
    env = dict(os.environ, ROS_DOMAIN_ID=str(random.randint(1, 100)),
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', PYTHONUNBUFFERED='1')
    procs = {'cart': start('cart', '/store/cart', keystore, env, args.seconds)}
    time.sleep(1.0)
    procs['review'] = start('review', '/store/review', keystore, env, args.seconds - 1.5)
    procs['intruder'] = start('intruder', '/store/intruder', keystore, env, args.seconds - 1.5)
    outs = {}
    for role, p in procs.items():
        out, _ = p.communicate(timeout=args.seconds + 30)
        outs[role] = (p.returncode, out)
        print(f'--- {role} (exit {p.returncode})\n{out.strip()[-2000:]}')
    cart_code, cart_out = outs['cart']
    line = next((x for x in cart_out.splitlines() if x.startswith('cart received from')), '')
    senders = line.split(':', 1)[1].split('(')[0].strip().split(',') if line else []
    if cart_code != 0 or not line:
        print('RESULT: secure processes could not run with this ROS install (see above)')
        return 2
    if 'intruder' in senders:
        print('RESULT: NOT SECURE: the intruder\'s decisions reached the cart')
        return 1
    if 'review' not in senders:
        print('RESULT: inconclusive: not even the review node\'s decisions reached the cart')
        return 3
    print('RESULT: secure: only the review node\'s decisions reached the cart')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
