// RFC 9421 signing and verification with real ed25519 keys: the pinned base, every refusal code, and tamper properties.

import { createPublicKey, sign } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  HttpSignatureError,
  MAX_SIGNATURE_HEADER_CHARS,
  checkBodyDigest,
  contentDigest,
  ed25519PrivateKeyFromSeed,
  ed25519PublicKeyFromRaw,
  ed25519PublicKeyHex,
  generateEd25519KeyPair,
  readSignedHeaders,
  signRequest,
  signatureBase,
  verifyRequest,
  verifySignature,
  type HttpSignatureErrorCode,
  type VerifyRequestInput,
} from '../../adapters/http/auth/http-signature.js';

// RFC 8032 §7.1, test 1: a key with a published public key and signature.
const RFC8032_SEED_HEX = '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60';
const RFC8032_PUBLIC_HEX = 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a';
const RFC8032_EMPTY_SIGNATURE_HEX =
  'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b';

const NOW_SEC = 1_700_000_000;
const MAX_SKEW_SEC = 300;
const NONCE = 'abcdefghijklmnop0123';
const KEY_ID = 'contributor-1';
const BODY = Buffer.from('{"loss":0.5}', 'utf8');

const signer = generateEd25519KeyPair();
const signerPublic = Buffer.from(signer.publicKeyHex, 'hex');

function signed(overrides: Partial<Parameters<typeof signRequest>[0]> = {}) {
  return signRequest({
    method: 'POST',
    path: '/v1/runs/r1/submissions?attempt=2',
    body: BODY,
    keyId: KEY_ID,
    privateKey: signer.privateKey,
    createdSec: NOW_SEC,
    nonce: NONCE,
    ...overrides,
  });
}

function verifyInput(headers: VerifyRequestInput['headers'], overrides: Partial<VerifyRequestInput> = {}): VerifyRequestInput {
  return {
    method: 'POST',
    path: '/v1/runs/r1/submissions',
    query: '?attempt=2',
    headers,
    body: BODY,
    nowSec: NOW_SEC,
    maxSkewSec: MAX_SKEW_SEC,
    publicKeyFor: async (keyId) => (keyId === KEY_ID ? signerPublic : null),
    ...overrides,
  };
}

async function expectRefused(input: VerifyRequestInput, code: HttpSignatureErrorCode): Promise<void> {
  const error = await verifyRequest(input).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(HttpSignatureError);
  expect(error).toMatchObject({ code, status: 401 });
}

/** Valid headers with the Signature-Input member's parameters or components replaced. */
function withSignatureInput(signatureInput: string): Record<string, string> {
  return { ...signed(), 'signature-input': signatureInput };
}

describe('ed25519 keys', () => {
  it('derives the RFC 8032 public key from its seed and reproduces its signature', () => {
    const privateKey = ed25519PrivateKeyFromSeed(Buffer.from(RFC8032_SEED_HEX, 'hex'));
    expect(ed25519PublicKeyHex(privateKey)).toBe(RFC8032_PUBLIC_HEX);
    expect(sign(null, Buffer.alloc(0), privateKey).toString('hex')).toBe(RFC8032_EMPTY_SIGNATURE_HEX);
    const publicKey = ed25519PublicKeyFromRaw(Buffer.from(RFC8032_PUBLIC_HEX, 'hex'));
    expect(publicKey.asymmetricKeyType).toBe('ed25519');
    expect(ed25519PublicKeyHex(publicKey)).toBe(RFC8032_PUBLIC_HEX);
  });

  it('generates key pairs whose hex public key matches the private key', () => {
    const pair = generateEd25519KeyPair();
    expect(pair.publicKeyHex).toMatch(/^[0-9a-f]{64}$/);
    expect(ed25519PublicKeyHex(createPublicKey(pair.privateKey))).toBe(pair.publicKeyHex);
  });

  it('refuses raw keys and seeds of the wrong length', () => {
    expect(() => ed25519PublicKeyFromRaw(new Uint8Array(31))).toThrow(expect.objectContaining({ code: 'SIGNING_INPUT_INVALID' }));
    expect(() => ed25519PrivateKeyFromSeed(new Uint8Array(33))).toThrow(expect.objectContaining({ code: 'SIGNING_INPUT_INVALID' }));
  });
});

describe('the signature base and headers', () => {
  it('is pinned: components, values and @signature-params exactly as RFC 9421 §2.5 builds them', () => {
    const base = signatureBase(
      { method: 'POST', path: '/v1/runs/r1/submissions', query: '?attempt=2', contentDigest: contentDigest(BODY) },
      { createdSec: NOW_SEC, keyId: KEY_ID, nonce: NONCE },
    );
    expect(base).toBe(
      [
        '"@method": POST',
        '"@path": /v1/runs/r1/submissions',
        '"@query": ?attempt=2',
        '"content-digest": sha-256=:UGT0bc0EG/6NiOWKAFNuBW6ir9YkC7depsvc4/0I0sQ=:',
        '"@signature-params": ("@method" "@path" "@query" "content-digest");created=1700000000;keyid="contributor-1";nonce="abcdefghijklmnop0123";alg="ed25519"',
      ].join('\n'),
    );
  });

  it('signs an absent query as "?" and sends the three headers in their documented form', () => {
    const headers = signRequest({ method: 'GET', path: '/v1/runs', body: '', keyId: KEY_ID, privateKey: signer.privateKey, createdSec: NOW_SEC, nonce: NONCE });
    expect(headers['content-digest']).toBe('sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:');
    expect(headers['signature-input']).toBe(
      'sig1=("@method" "@path" "@query" "content-digest");created=1700000000;keyid="contributor-1";nonce="abcdefghijklmnop0123";alg="ed25519"',
    );
    expect(headers.signature).toMatch(/^sig1=:[A-Za-z0-9+/]{86}==:$/);
    const base = signatureBase({ method: 'GET', path: '/v1/runs', query: '', contentDigest: headers['content-digest'] }, { createdSec: NOW_SEC, keyId: KEY_ID, nonce: NONCE });
    expect(base.split('\n')[2]).toBe('"@query": ?');
  });

  it('refuses to sign with an unusable nonce, key id, time or path', () => {
    for (const overrides of [{ nonce: 'short' }, { keyId: 'has space' }, { createdSec: -1 }, { path: 'no-slash' }, { path: '/a\nb' }]) {
      expect(() => signed(overrides)).toThrow(expect.objectContaining({ code: 'SIGNING_INPUT_INVALID' }));
    }
  });
});

describe('verifyRequest accepts', () => {
  it('a request it signed: the key id, nonce and creation time come back', async () => {
    await expect(verifyRequest(verifyInput(signed()))).resolves.toEqual({ keyId: KEY_ID, nonce: NONCE, createdSec: NOW_SEC });
  });

  it('a request signed with the raw seed, headers in any case, query without its "?"', async () => {
    const seed = Buffer.from(RFC8032_SEED_HEX, 'hex');
    const headers = signed({ privateKey: seed });
    const mixedCase = { 'Content-Digest': headers['content-digest'], 'Signature-Input': headers['signature-input'], SIGNATURE: headers.signature };
    const publicKeyFor = async () => Buffer.from(RFC8032_PUBLIC_HEX, 'hex');
    await expect(verifyRequest(verifyInput(mixedCase, { query: 'attempt=2', publicKeyFor }))).resolves.toMatchObject({ keyId: KEY_ID });
  });

  it('a signature at the edge of the skew window on either side', async () => {
    await expect(verifyRequest(verifyInput(signed(), { nowSec: NOW_SEC + MAX_SKEW_SEC }))).resolves.toBeDefined();
    await expect(verifyRequest(verifyInput(signed(), { nowSec: NOW_SEC - MAX_SKEW_SEC }))).resolves.toBeDefined();
  });

  it('a signature made independently with crypto.sign over the documented base', async () => {
    const base = [
      '"@method": POST',
      '"@path": /v1/runs/r1/submissions',
      '"@query": ?attempt=2',
      '"content-digest": sha-256=:UGT0bc0EG/6NiOWKAFNuBW6ir9YkC7depsvc4/0I0sQ=:',
      '"@signature-params": ("@method" "@path" "@query" "content-digest");created=1700000000;keyid="contributor-1";nonce="abcdefghijklmnop0123";alg="ed25519"',
    ].join('\n');
    const signatureBytes = sign(null, Buffer.from(base, 'ascii'), signer.privateKey);
    const headers = {
      'content-digest': 'sha-256=:UGT0bc0EG/6NiOWKAFNuBW6ir9YkC7depsvc4/0I0sQ=:',
      'signature-input': 'sig1=("@method" "@path" "@query" "content-digest");created=1700000000;keyid="contributor-1";nonce="abcdefghijklmnop0123";alg="ed25519"',
      signature: `sig1=:${signatureBytes.toString('base64')}:`,
    };
    await expect(verifyRequest(verifyInput(headers))).resolves.toEqual({ keyId: KEY_ID, nonce: NONCE, createdSec: NOW_SEC });
  });

  it('components and parameters in another order: the base follows the Signature-Input as sent', async () => {
    const params = ';alg="ed25519";nonce="abcdefghijklmnop0123";keyid="contributor-1";created=1700000000';
    const base = [
      '"content-digest": sha-256=:UGT0bc0EG/6NiOWKAFNuBW6ir9YkC7depsvc4/0I0sQ=:',
      '"@query": ?attempt=2',
      '"@path": /v1/runs/r1/submissions',
      '"@method": POST',
      `"@signature-params": ("content-digest" "@query" "@path" "@method")${params}`,
    ].join('\n');
    const headers = {
      'content-digest': 'sha-256=:UGT0bc0EG/6NiOWKAFNuBW6ir9YkC7depsvc4/0I0sQ=:',
      'signature-input': `sig1=( "content-digest"  "@query" "@path" "@method" )${params}`,
      signature: `sig1=:${sign(null, Buffer.from(base, 'ascii'), signer.privateKey).toString('base64')}:`,
    };
    await expect(verifyRequest(verifyInput(headers))).resolves.toMatchObject({ keyId: KEY_ID });
  });
});

describe('verifyRequest refuses', () => {
  it('SIGNATURE_MISSING without Signature or Signature-Input', async () => {
    const { signature: _signature, ...noSignature } = signed();
    const { 'signature-input': _input, ...noInput } = signed();
    await expectRefused(verifyInput(noSignature), 'SIGNATURE_MISSING');
    await expectRefused(verifyInput(noInput), 'SIGNATURE_MISSING');
    await expectRefused(verifyInput({}), 'SIGNATURE_MISSING');
  });

  it('CONTENT_DIGEST_MISSING without Content-Digest or without its sha-256 member', async () => {
    const { 'content-digest': _digest, ...noDigest } = signed();
    await expectRefused(verifyInput(noDigest), 'CONTENT_DIGEST_MISSING');
    await expectRefused(verifyInput({ ...signed(), 'content-digest': `sha-512=:${Buffer.alloc(64).toString('base64')}:` }), 'CONTENT_DIGEST_MISSING');
  });

  it('CONTENT_DIGEST_MISMATCH when the body was changed after signing', async () => {
    await expectRefused(verifyInput(signed(), { body: Buffer.from('{"loss":0.4}') }), 'CONTENT_DIGEST_MISMATCH');
    await expectRefused(verifyInput({ ...signed(), 'content-digest': 'sha-256=:AAAA:' }), 'CONTENT_DIGEST_MISMATCH');
  });

  it('SIGNATURE_INVALID for a changed path, query, method, key, or a body re-digested by someone else', async () => {
    const tamperedBody = Buffer.from('{"loss":0.1}');
    await expectRefused(verifyInput(signed(), { path: '/v1/runs/r2/submissions' }), 'SIGNATURE_INVALID');
    await expectRefused(verifyInput(signed(), { query: '?attempt=3' }), 'SIGNATURE_INVALID');
    await expectRefused(verifyInput(signed(), { query: '' }), 'SIGNATURE_INVALID');
    await expectRefused(verifyInput(signed(), { method: 'PUT' }), 'SIGNATURE_INVALID');
    const other = Buffer.from(generateEd25519KeyPair().publicKeyHex, 'hex');
    await expectRefused(verifyInput(signed(), { publicKeyFor: async () => other }), 'SIGNATURE_INVALID');
    await expectRefused(verifyInput({ ...signed(), 'content-digest': contentDigest(tamperedBody) }, { body: tamperedBody }), 'SIGNATURE_INVALID');
  });

  it('UNKNOWN_KEY when no key is registered for the keyid', async () => {
    await expectRefused(verifyInput(signed({ keyId: 'someone-else' })), 'UNKNOWN_KEY');
  });

  it('SIGNATURE_EXPIRED and SIGNATURE_FROM_FUTURE outside the skew window', async () => {
    await expectRefused(verifyInput(signed(), { nowSec: NOW_SEC + MAX_SKEW_SEC + 1 }), 'SIGNATURE_EXPIRED');
    await expectRefused(verifyInput(signed(), { nowSec: NOW_SEC - MAX_SKEW_SEC - 1 }), 'SIGNATURE_FROM_FUTURE');
  });

  it('SIGNATURE_MALFORMED for unparseable structured fields', async () => {
    const valid = signed();
    const unparseable = ['sig1=(', 'sig1=("@method" "@path"', 'sig1=("@method");created=1.5', 'Sig1=()', 'sig1=(),', 'sig1=("a\\n")', 'sig1=() x'];
    for (const input of unparseable) await expectRefused(verifyInput(withSignatureInput(input)), 'SIGNATURE_MALFORMED');
    for (const signature of ['sig1=:not base64!:', 'sig1=:AAAA', 'sig1=:AAA:', 'sig1="text"', `sig1=:${Buffer.alloc(63).toString('base64')}:`]) {
      await expectRefused(verifyInput({ ...valid, signature }), 'SIGNATURE_MALFORMED');
    }
    await expectRefused(verifyInput({ ...valid, 'content-digest': 'sha-256=:abc' }), 'SIGNATURE_MALFORMED');
  });

  it('SIGNATURE_MALFORMED for a wrong label, two signatures, or a signature with parameters', async () => {
    const valid = signed();
    const relabel = (value: string) => value.replace(/^sig1=/, 'sig2=');
    await expectRefused(verifyInput({ ...valid, 'signature-input': relabel(valid['signature-input']), signature: relabel(valid.signature) }), 'SIGNATURE_MALFORMED');
    await expectRefused(verifyInput({ ...valid, signature: `${valid.signature}, ${relabel(valid.signature)}` }), 'SIGNATURE_MALFORMED');
    await expectRefused(verifyInput({ ...valid, signature: `${valid.signature};x=1` }), 'SIGNATURE_MALFORMED');
  });

  it('SIGNATURE_MALFORMED for a wrong alg, missing or bad parameters, or an unsupported one', async () => {
    const components = 'sig1=("@method" "@path" "@query" "content-digest")';
    const cases = [
      ';created=1700000000;keyid="contributor-1";nonce="abcdefghijklmnop0123";alg="rsa-pss-sha512"',
      ';created=1700000000;keyid="contributor-1";nonce="abcdefghijklmnop0123"',
      ';created=1700000000;keyid="contributor-1";alg="ed25519"',
      ';keyid="contributor-1";nonce="abcdefghijklmnop0123";alg="ed25519"',
      ';created=1700000000;nonce="abcdefghijklmnop0123";alg="ed25519"',
      ';created=1700000000;keyid="contributor-1";nonce="short";alg="ed25519"',
      ';created=1700000000;keyid="contributor-1";nonce="abcdefghijklmnop01+3";alg="ed25519"',
      ';created=1700000000;keyid="has space";nonce="abcdefghijklmnop0123";alg="ed25519"',
      ';created="1700000000";keyid="contributor-1";nonce="abcdefghijklmnop0123";alg="ed25519"',
      ';created=-5;keyid="contributor-1";nonce="abcdefghijklmnop0123";alg="ed25519"',
      ';created=1700000000;keyid=contributor;nonce="abcdefghijklmnop0123";alg="ed25519"',
      ';created=1700000000;keyid="contributor-1";nonce="abcdefghijklmnop0123";alg="ed25519";expires=1700000100',
      ';created=1700000000;created=1700000000;keyid="contributor-1";nonce="abcdefghijklmnop0123";alg="ed25519"',
    ];
    for (const params of cases) await expectRefused(verifyInput(withSignatureInput(`${components}${params}`)), 'SIGNATURE_MALFORMED');
  });

  it('SIGNATURE_MALFORMED unless the components are exactly the required set', async () => {
    const params = ';created=1700000000;keyid="contributor-1";nonce="abcdefghijklmnop0123";alg="ed25519"';
    const cases = [
      '("@method" "@path" "content-digest")',
      '("@method" "@path" "@query" "content-digest" "content-type")',
      '("@method" "@path" "@query" "@query")',
      '("@method" "@path" "@query" "content-digest";sf)',
      '("@method" "@path" "@query" content-digest)',
      '()',
    ];
    for (const components of cases) await expectRefused(verifyInput(withSignatureInput(`sig1=${components}${params}`)), 'SIGNATURE_MALFORMED');
  });

  it('SIGNATURE_MALFORMED for oversize headers and paths', async () => {
    const valid = signed();
    const padded = `${valid.signature}${' '.repeat(MAX_SIGNATURE_HEADER_CHARS)}`;
    await expectRefused(verifyInput({ ...valid, signature: padded }), 'SIGNATURE_MALFORMED');
    await expectRefused(verifyInput({ ...valid, 'signature-input': `${valid['signature-input']};x="${'a'.repeat(1024)}"` }), 'SIGNATURE_MALFORMED');
    await expectRefused(verifyInput({ ...valid, 'content-digest': `${valid['content-digest']}, x=:${'A'.repeat(600)}:` }), 'SIGNATURE_MALFORMED');
    await expectRefused(verifyInput(valid, { path: `/${'a'.repeat(5000)}` }), 'SIGNATURE_MALFORMED');
  });
});

describe('verifying in two halves (headers before the body, then the body)', () => {
  const { body: _body, publicKeyFor: _publicKeyFor, ...headersOnly } = verifyInput(signed());
  const publicKeyFor = async (keyId: string) => (keyId === KEY_ID ? signerPublic : null);

  it('verifies the signature from the headers alone, then ties the body to the signed digest', async () => {
    const half = readSignedHeaders(headersOnly);
    await expect(verifySignature(half, publicKeyFor)).resolves.toEqual({ keyId: KEY_ID, nonce: NONCE, createdSec: NOW_SEC });
    expect(() => checkBodyDigest(half, BODY)).not.toThrow();
  });

  it('accepts a signature over a digest the body does not match, and refuses that body (CONTENT_DIGEST_MISMATCH)', async () => {
    const half = readSignedHeaders(headersOnly);
    await expect(verifySignature(half, publicKeyFor)).resolves.toBeDefined();
    expect(() => checkBodyDigest(half, Buffer.from('{"loss":0.4}'))).toThrow(expect.objectContaining({ code: 'CONTENT_DIGEST_MISMATCH', status: 401 }));
    expect(() => checkBodyDigest(half, new Uint8Array(0))).toThrow(expect.objectContaining({ code: 'CONTENT_DIGEST_MISMATCH' }));
  });

  it('refuses in the header half what needs no body: missing, malformed, stale, or an uncovered Content-Digest', () => {
    const { 'content-digest': _digest, ...noDigest } = signed();
    const refusal = (headers: Record<string, string>, nowSec = NOW_SEC) => {
      try {
        readSignedHeaders({ ...headersOnly, headers, nowSec });
        return null;
      } catch (error) {
        return (error as HttpSignatureError).code;
      }
    };
    expect(refusal({})).toBe('SIGNATURE_MISSING');
    expect(refusal(noDigest)).toBe('CONTENT_DIGEST_MISSING');
    expect(refusal({ ...signed(), signature: 'sig1=:AAA:' })).toBe('SIGNATURE_MALFORMED');
    expect(refusal(signed(), NOW_SEC + MAX_SKEW_SEC + 1)).toBe('SIGNATURE_EXPIRED');
    expect(refusal(withSignatureInput('sig1=("@method" "@path" "@query");created=1700000000;keyid="contributor-1";nonce="abcdefghijklmnop0123";alg="ed25519"'))).toBe('SIGNATURE_MALFORMED');
  });

  it('refuses a forged signature in the header half: another key under the keyid, or a re-digested body', async () => {
    const other = Buffer.from(generateEd25519KeyPair().publicKeyHex, 'hex');
    await expect(verifySignature(readSignedHeaders(headersOnly), async () => other)).rejects.toMatchObject({ code: 'SIGNATURE_INVALID' });
    await expect(verifySignature(readSignedHeaders(headersOnly), async () => null)).rejects.toMatchObject({ code: 'UNKNOWN_KEY' });
    const redigested = readSignedHeaders({ ...headersOnly, headers: { ...signed(), 'content-digest': contentDigest(Buffer.from('other')) } });
    await expect(verifySignature(redigested, publicKeyFor)).rejects.toMatchObject({ code: 'SIGNATURE_INVALID' });
  });
});

describe('tamper properties', () => {
  const PRINTABLE = fc.integer({ min: 0x21, max: 0x7e }).map((code) => String.fromCharCode(code));

  it('any single-byte change of the body after signing fails verification', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 256 }), fc.nat(), fc.integer({ min: 1, max: 255 }), async (body, at, delta) => {
        const headers = signRequest({ method: 'POST', path: '/v1/x', body, keyId: KEY_ID, privateKey: signer.privateKey, createdSec: NOW_SEC, nonce: NONCE });
        const tampered = Uint8Array.from(body);
        const index = at % body.length;
        tampered[index] = (tampered[index]! + delta) % 256;
        const input = verifyInput(headers, { path: '/v1/x', query: '', body: tampered });
        await expect(verifyRequest(input)).rejects.toMatchObject({ code: 'CONTENT_DIGEST_MISMATCH' });
        await expect(verifyRequest({ ...input, body })).resolves.toBeDefined();
      }),
      { numRuns: 200 },
    );
  });

  it('any single-character change of the path after signing fails verification', async () => {
    const pathArb = fc.array(fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-._~%/'), { minLength: 1, maxLength: 64 }).map((chars) => `/${chars.join('')}`);
    await fc.assert(
      fc.asyncProperty(pathArb, fc.nat(), PRINTABLE, async (path, at, replacement) => {
        const index = at % path.length;
        fc.pre(path[index] !== replacement);
        const headers = signRequest({ method: 'POST', path, body: BODY, keyId: KEY_ID, privateKey: signer.privateKey, createdSec: NOW_SEC, nonce: NONCE });
        const tamperedPath = `${path.slice(0, index)}${replacement}${path.slice(index + 1)}`;
        const error = await verifyRequest(verifyInput(headers, { path: tamperedPath, query: '' })).then(
          () => null,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(HttpSignatureError);
        expect(['SIGNATURE_INVALID', 'SIGNATURE_MALFORMED']).toContain((error as HttpSignatureError).code);
      }),
      { numRuns: 200 },
    );
  });
});
