// TLS files, checked before the engine starts: the certificate parses, the key parses (with its
// passphrase) and belongs to the certificate. uWebSockets.js's SSLApp reads the same files when
// the app is created; a renewed certificate is read at the next start.

import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** Throws an Error naming the setting and the file when the pair cannot serve TLS. */
export function checkTlsFiles(certFile: string, keyFile: string, passphrase: string | null): void {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(readFileSync(certFile));
  } catch (err) {
    throw new Error(`CHAT_TLS_CERT: ${certFile} is not a PEM certificate (${(err as Error).message})`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: readFileSync(keyFile), format: 'pem', passphrase: passphrase ?? undefined });
  } catch (err) {
    const what = passphrase === null
      ? 'is not a PEM private key (an encrypted key needs CHAT_TLS_KEY_PASSPHRASE)'
      : 'is not a PEM private key, or CHAT_TLS_KEY_PASSPHRASE does not decrypt it';
    throw new Error(`CHAT_TLS_KEY: ${keyFile} ${what}: ${(err as Error).message}`);
  }
  if (!cert.checkPrivateKey(key)) {
    throw new Error(`CHAT_TLS_KEY: ${keyFile} is not the private key of the certificate in ${certFile}`);
  }
}
