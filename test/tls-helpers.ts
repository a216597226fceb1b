// Self-signed certificates for TLS tests, made by openssl in a test's own folder.

import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * `dir/name.crt` and `dir/name.key`: a certificate for 127.0.0.1 and localhost, valid two days,
 * with its EC key (encrypted when a passphrase is given). Returns both paths.
 */
export function selfSigned(dir: string, name: string, passphrase?: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  const enc = passphrase === undefined ? [] : ['-aes-128-cbc', '-pass', `pass:${passphrase}`];
  openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', ...enc, '-out', key);
  openssl('req', '-x509', '-new', '-key', key, ...(passphrase === undefined ? [] : ['-passin', `pass:${passphrase}`]),
    '-out', cert, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1');
  return { cert, key };
}
