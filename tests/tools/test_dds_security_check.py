"""tools/dds_security_check.py: the keystore it builds with openssl is one a DDS security stack
would accept (chains and signatures verify) and grants review_decisions to the review only."""
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

pytestmark = pytest.mark.skipif(shutil.which('openssl') is None, reason='needs openssl')


def _verify_smime(signed, ca):
    return subprocess.run(['openssl', 'smime', '-verify', '-text', '-in', str(signed),
                           '-CAfile', str(ca)], capture_output=True, text=True)


def test_keystore_signatures_and_grants(load_tool, tmp_path):
    tool = load_tool('dds_security_check')
    root = tmp_path / 'keystore'
    tool.build_keystore(root)
    ca = root / 'public' / 'ca.cert.pem'
    assert _verify_smime(root / 'enclaves' / 'governance.p7s', ca).returncode == 0
    publishers = {}
    for enclave in ('/store/review', '/store/cart', '/store/intruder'):
        d = root / 'enclaves' / enclave.lstrip('/')
        for name in ('cert.pem', 'key.pem', 'identity_ca.cert.pem', 'permissions_ca.cert.pem',
                     'governance.p7s', 'permissions.p7s'):
            assert (d / name).is_file(), d / name
        chain = subprocess.run(['openssl', 'verify', '-CAfile', str(ca), str(d / 'cert.pem')],
                               capture_output=True, text=True)
        assert chain.returncode == 0, chain.stderr
        signed = _verify_smime(d / 'permissions.p7s', ca)
        assert signed.returncode == 0, signed.stderr
        xml = (d / 'permissions.xml').read_text()
        assert signed.stdout.replace('\r\n', '\n') == xml     # what is signed is this file
        grant = ET.fromstring(xml.encode()).find('.//grant')
        assert grant.findtext('subject_name') == f'CN={enclave}'
        assert grant.findtext('default') == 'DENY'
        publishers[enclave] = {t.text for t in grant.findall('.//publish//topic')}
    writers = [e for e, topics in publishers.items() if 'rt/store/review_decisions' in topics]
    assert writers == ['/store/review']
    assert 'rt/store/review_decision_acks' in publishers['/store/cart']
