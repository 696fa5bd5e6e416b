// RFC 9421 HTTP Message Signatures (ed25519) with an RFC 9530 Content-Digest: the client signer and the server verifier.

import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, timingSafeEqual, verify, type KeyObject } from 'node:crypto';

/*
 * Covered components, in this order: "@method" "@path" "@query" "content-digest".
 * "@query" is covered separately (rather than "@target-uri") so the signature does not depend on
 * the scheme and authority a proxy may rewrite, while the query string is still protected.
 * An absent or empty query signs as "?" (RFC 9421 §2.2.7). The signature base is, lines joined
 * by "\n" with no trailing newline:
 *
 *   "@method": POST
 *   "@path": /v1/submissions
 *   "@query": ?run=r1
 *   "content-digest": sha-256=:<base64 of SHA-256(body)>:
 *   "@signature-params": ("@method" "@path" "@query" "content-digest");created=1700000000;keyid="c-1";nonce="<nonce>";alg="ed25519"
 */

export const SIGNATURE_LABEL = 'sig1';
export const SIGNATURE_ALGORITHM = 'ed25519';
export const COVERED_COMPONENTS = Object.freeze(['@method', '@path', '@query', 'content-digest'] as const);

export const MAX_SIGNATURE_HEADER_CHARS = 1024;
export const MAX_SIGNATURE_INPUT_HEADER_CHARS = 1024;
export const MAX_CONTENT_DIGEST_HEADER_CHARS = 512;
export const MAX_METHOD_CHARS = 32;
export const MAX_PATH_CHARS = 2048;
export const MAX_QUERY_CHARS = 4096;
/** RFC 8941 caps integers at 15 digits; `created` is seconds since the epoch. */
const MAX_SF_INTEGER_DIGITS = 15;
const ED25519_KEY_BYTES = 32;
const ED25519_SIGNATURE_BYTES = 64;
const SHA256_DIGEST_BYTES = 32;
const SHA512_DIGEST_BYTES = 64;

export const NONCE_PATTERN = /^[A-Za-z0-9_-]{16,128}$/;
export const KEY_ID_PATTERN = /^[A-Za-z0-9._:-]{1,200}$/;
const METHOD_PATTERN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Visible ASCII and space: anything else (a newline above all) could forge extra lines of the base. */
const BASE_VALUE_PATTERN = /^[\x20-\x7e]*$/;

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export type HttpSignatureErrorCode =
  | 'SIGNATURE_MISSING'
  | 'SIGNATURE_MALFORMED'
  | 'CONTENT_DIGEST_MISSING'
  | 'CONTENT_DIGEST_MISMATCH'
  | 'SIGNATURE_EXPIRED'
  | 'SIGNATURE_FROM_FUTURE'
  | 'UNKNOWN_KEY'
  | 'SIGNATURE_INVALID'
  /** Signer side only: the caller handed signRequest or a key helper something unusable. */
  | 'SIGNING_INPUT_INVALID';

export class HttpSignatureError extends Error {
  override readonly name = 'HttpSignatureError';
  constructor(
    /** Stable, SCREAMING_SNAKE code; clients branch on it, never on the message. */
    readonly code: HttpSignatureErrorCode,
    message: string,
    /** The HTTP status a server answers with. */
    readonly status: number = code === 'SIGNING_INPUT_INVALID' ? 400 : 401,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// Keys

/** An ed25519 public key from its 32 raw bytes. */
export function ed25519PublicKeyFromRaw(raw: Uint8Array): KeyObject {
  if (raw.length !== ED25519_KEY_BYTES) throw new HttpSignatureError('SIGNING_INPUT_INVALID', `an ed25519 public key is ${ED25519_KEY_BYTES} bytes, got ${raw.length}`);
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

/** An ed25519 private key from its 32-byte seed. */
export function ed25519PrivateKeyFromSeed(seed: Uint8Array): KeyObject {
  if (seed.length !== ED25519_KEY_BYTES) throw new HttpSignatureError('SIGNING_INPUT_INVALID', `an ed25519 seed is ${ED25519_KEY_BYTES} bytes, got ${seed.length}`);
  return createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

/** The 32 raw bytes of an ed25519 public key, as hex (what a contributor registers). */
export function ed25519PublicKeyHex(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  if (publicKey.asymmetricKeyType !== 'ed25519') throw new HttpSignatureError('SIGNING_INPUT_INVALID', 'not an ed25519 key');
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return der.subarray(ED25519_SPKI_PREFIX.length).toString('hex');
}

export function generateEd25519KeyPair(): { publicKeyHex: string; privateKey: KeyObject } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return { publicKeyHex: ed25519PublicKeyHex(publicKey), privateKey };
}

// ---------------------------------------------------------------------------------------------
// Signing

/** RFC 9530 Content-Digest of the exact body bytes: `sha-256=:<base64>:`. */
export function contentDigest(body: Uint8Array): string {
  return `sha-256=:${createHash('sha256').update(body).digest('base64')}:`;
}

export type SignatureParams = Readonly<{ createdSec: number; keyId: string; nonce: string }>;

/** The RFC 9421 signature base for this API's covered components and parameters (see the top of this file). */
export function signatureBase(
  request: Readonly<{ method: string; path: string; query: string; contentDigest: string }>,
  params: SignatureParams,
): string {
  const values = componentValues(request.method, request.path, request.query, request.contentDigest);
  return buildBase(COVERED_COMPONENTS, values, serializeSignatureParams(COVERED_COMPONENTS, paramsToSf(params)));
}

export type SignRequestInput = Readonly<{
  method: string;
  /** The request target's path with its query, e.g. `/v1/submissions?run=r1`. */
  path: string;
  body: Uint8Array | string;
  keyId: string;
  /** An ed25519 private KeyObject, or its raw 32-byte seed. */
  privateKey: KeyObject | Uint8Array;
  createdSec: number;
  nonce: string;
}>;

export type SignatureHeaders = { 'content-digest': string; 'signature-input': string; signature: string };

/** The three headers that sign one request. */
export function signRequest(input: SignRequestInput): SignatureHeaders {
  checkSigningInput(input);
  const key = input.privateKey instanceof Uint8Array ? ed25519PrivateKeyFromSeed(input.privateKey) : input.privateKey;
  if (key.type !== 'private' || key.asymmetricKeyType !== 'ed25519') throw new HttpSignatureError('SIGNING_INPUT_INVALID', 'privateKey must be an ed25519 private key');
  const body = typeof input.body === 'string' ? Buffer.from(input.body, 'utf8') : input.body;
  const digest = contentDigest(body);
  const queryAt = input.path.indexOf('?');
  const path = queryAt < 0 ? input.path : input.path.slice(0, queryAt);
  const query = queryAt < 0 ? '' : input.path.slice(queryAt);
  const params = { createdSec: input.createdSec, keyId: input.keyId, nonce: input.nonce };
  const base = signatureBase({ method: input.method, path, query, contentDigest: digest }, params);
  const signatureBytes = sign(null, Buffer.from(base, 'ascii'), key);
  return {
    'content-digest': digest,
    'signature-input': `${SIGNATURE_LABEL}=${serializeSignatureParams(COVERED_COMPONENTS, paramsToSf(params))}`,
    signature: `${SIGNATURE_LABEL}=${serializeBareItem({ kind: 'bytes', value: signatureBytes })}`,
  };
}

function checkSigningInput(input: SignRequestInput): void {
  const refuse = (why: string): never => {
    throw new HttpSignatureError('SIGNING_INPUT_INVALID', why);
  };
  if (!KEY_ID_PATTERN.test(input.keyId)) refuse(`keyId must match ${KEY_ID_PATTERN}`);
  if (!NONCE_PATTERN.test(input.nonce)) refuse(`nonce must match ${NONCE_PATTERN}`);
  if (!Number.isSafeInteger(input.createdSec) || input.createdSec < 0) refuse('createdSec must be a non-negative integer');
  if (!METHOD_PATTERN.test(input.method) || input.method.length > MAX_METHOD_CHARS) refuse('method must be an HTTP token');
  if (!input.path.startsWith('/') || input.path.includes('#')) refuse('path must start with "/" and carry no fragment');
  if (!BASE_VALUE_PATTERN.test(input.path)) refuse('path must be visible ASCII: percent-encode anything else');
}

// ---------------------------------------------------------------------------------------------
// Verifying

/** What verification reads from a request before its body: the request line and the headers. */
export type SignedHeadersInput = Readonly<{
  method: string;
  /** The path without its query, e.g. `/v1/submissions`. */
  path: string;
  /** The query with or without its leading "?", empty when there is none. */
  query: string;
  /** Request headers (Node's IncomingHttpHeaders fits): names in any case. */
  headers: Readonly<Record<string, string | readonly string[] | undefined>>;
  nowSec: number;
  maxSkewSec: number;
}>;

export type VerifyRequestInput = SignedHeadersInput &
  Readonly<{
    /** The raw body bytes exactly as received. */
    body: Uint8Array;
    /** The signer's registered 32-byte raw ed25519 key, or null when the key id is unknown. */
    publicKeyFor: (keyId: string) => Promise<Uint8Array | null>;
  }>;

export type VerifiedSignature = Readonly<{ keyId: string; nonce: string; createdSec: number }>;

/**
 * A signature read and checked from the headers alone: well formed, fresh, covering the
 * Content-Digest header as sent. The signature base is built over that header, so verifying it
 * needs no body; `checkBodyDigest` then ties the body, once read, to the digest that was signed.
 */
export type SignedHeaders = Readonly<{
  params: VerifiedSignature;
  base: string;
  signatureBytes: Buffer;
  /** The Content-Digest members this verifier knows, as sent (sha-256 always among them). */
  digests: ReadonlyMap<DigestAlgorithm, Buffer>;
}>;

/**
 * Verifies a signed request in one go: `readSignedHeaders`, `checkBodyDigest`, `verifySignature`.
 * It does not burn the nonce: the caller claims it (NonceStore) after this resolves, so a forged
 * request can never use up someone else's nonce.
 */
export async function verifyRequest(input: VerifyRequestInput): Promise<VerifiedSignature> {
  const signed = readSignedHeaders(input);
  checkBodyDigest(signed, input.body);
  return verifySignature(signed, input.publicKeyFor);
}

/**
 * The first half of verification, for a server that authenticates before it reads the body:
 * parses Signature, Signature-Input and Content-Digest, checks freshness and builds the base.
 * Refuses with SIGNATURE_MISSING, SIGNATURE_MALFORMED, SIGNATURE_EXPIRED, SIGNATURE_FROM_FUTURE
 * or CONTENT_DIGEST_MISSING. Nothing here looks up a key.
 */
export function readSignedHeaders(input: SignedHeadersInput): SignedHeaders {
  const headers = lowerCaseHeaders(input.headers);
  const parsed = parseSignatureHeaders(headers);
  checkFreshness(parsed.params.createdSec, input.nowSec, input.maxSkewSec);
  const { covered, digests } = parseContentDigest(headers.get('content-digest'));
  const values = verifierComponentValues(input, covered);
  const base = buildBase(parsed.components, values, parsed.signatureParamsValue);
  return { params: parsed.params, base, signatureBytes: parsed.signatureBytes, digests };
}

/** Checks the signature over the base against the signer's key: UNKNOWN_KEY or SIGNATURE_INVALID. */
export async function verifySignature(signed: SignedHeaders, publicKeyFor: (keyId: string) => Promise<Uint8Array | null>): Promise<VerifiedSignature> {
  const raw = await publicKeyFor(signed.params.keyId);
  if (!raw) throw new HttpSignatureError('UNKNOWN_KEY', `no active signing key is registered for keyid "${signed.params.keyId}"`);
  if (!verifiesWith(raw, signed.base, signed.signatureBytes)) {
    throw new HttpSignatureError('SIGNATURE_INVALID', 'the signature does not verify against the signature base and the registered key');
  }
  return signed.params;
}

/** The body bytes against every digest the signed Content-Digest carries: CONTENT_DIGEST_MISMATCH if any differs. */
export function checkBodyDigest(signed: SignedHeaders, body: Uint8Array): void {
  for (const [algorithm, received] of signed.digests) {
    const expected = createHash(algorithm.replace('-', '')).update(body).digest();
    if (received.length !== DIGEST_BYTES[algorithm] || !timingSafeEqual(received, expected)) {
      throw new HttpSignatureError('CONTENT_DIGEST_MISMATCH', `Content-Digest ${algorithm} does not match the body bytes`);
    }
  }
}

type ParsedSignature = {
  components: readonly string[];
  params: VerifiedSignature;
  /** The canonical serialization of the Signature-Input member: the "@signature-params" value. */
  signatureParamsValue: string;
  signatureBytes: Buffer;
};

function parseSignatureHeaders(headers: ReadonlyMap<string, string>): ParsedSignature {
  const signatureHeader = headers.get('signature');
  const inputHeader = headers.get('signature-input');
  if (signatureHeader === undefined || inputHeader === undefined) {
    throw new HttpSignatureError('SIGNATURE_MISSING', 'sign the request: send Signature, Signature-Input and Content-Digest headers (RFC 9421)');
  }
  boundLength('Signature', signatureHeader, MAX_SIGNATURE_HEADER_CHARS);
  boundLength('Signature-Input', inputHeader, MAX_SIGNATURE_INPUT_HEADER_CHARS);
  const inputMember = onlyMember('Signature-Input', parseHeaderDictionary('Signature-Input', inputHeader));
  const signatureMember = onlyMember('Signature', parseHeaderDictionary('Signature', signatureHeader));
  if (inputMember.kind !== 'inner') malformed(`Signature-Input ${SIGNATURE_LABEL} must be an inner list of components`);
  if (signatureMember.kind !== 'item' || signatureMember.bare.kind !== 'bytes' || signatureMember.params.size > 0) {
    malformed(`Signature ${SIGNATURE_LABEL} must be a byte sequence without parameters`);
  }
  const components = coveredComponents(inputMember.items);
  const params = signatureParams(inputMember.params);
  const signatureBytes = signatureMember.bare.value;
  if (signatureBytes.length !== ED25519_SIGNATURE_BYTES) malformed(`an ed25519 signature is ${ED25519_SIGNATURE_BYTES} bytes`);
  return { components, params, signatureParamsValue: serializeSignatureParams(components, inputMember.params), signatureBytes };
}

function parseHeaderDictionary(name: string, value: string): SfDictionary {
  try {
    return parseDictionary(value);
  } catch (error) {
    if (error instanceof SfParseError) malformed(`${name} is not a valid structured-field dictionary: ${error.message}`);
    throw error;
  }
}

function onlyMember(name: string, dictionary: SfDictionary): SfMember {
  const member = dictionary.get(SIGNATURE_LABEL);
  if (dictionary.size !== 1 || !member) malformed(`${name} must hold exactly one signature, labelled ${SIGNATURE_LABEL}`);
  return member;
}

function coveredComponents(items: readonly SfItem[]): string[] {
  const names = items.map((item) => {
    if (item.bare.kind !== 'string' || item.params.size > 0) malformed('component identifiers must be plain strings without parameters');
    return item.bare.value;
  });
  const required = new Set<string>(COVERED_COMPONENTS);
  const distinct = new Set(names);
  if (names.length !== required.size || distinct.size !== names.length || !names.every((n) => required.has(n))) {
    malformed(`the covered components must be exactly ${COVERED_COMPONENTS.map((c) => `"${c}"`).join(' ')}`);
  }
  return names;
}

const SIGNATURE_PARAM_NAMES = new Set(['created', 'keyid', 'nonce', 'alg']);

function signatureParams(params: SfParams): VerifiedSignature {
  for (const name of params.keys()) {
    if (!SIGNATURE_PARAM_NAMES.has(name)) malformed(`unsupported signature parameter "${name}"`);
  }
  const created = params.get('created');
  const keyId = params.get('keyid');
  const nonce = params.get('nonce');
  const alg = params.get('alg');
  if (created?.kind !== 'integer' || created.value < 0) malformed('created must be a non-negative integer');
  if (keyId?.kind !== 'string' || !KEY_ID_PATTERN.test(keyId.value)) malformed(`keyid must be a string matching ${KEY_ID_PATTERN}`);
  if (nonce?.kind !== 'string' || !NONCE_PATTERN.test(nonce.value)) malformed(`nonce must be a string matching ${NONCE_PATTERN}`);
  if (alg?.kind !== 'string' || alg.value !== SIGNATURE_ALGORITHM) malformed(`alg must be "${SIGNATURE_ALGORITHM}"`);
  return { keyId: keyId.value, nonce: nonce.value, createdSec: created.value };
}

function checkFreshness(createdSec: number, nowSec: number, maxSkewSec: number): void {
  if (nowSec - createdSec > maxSkewSec) {
    throw new HttpSignatureError('SIGNATURE_EXPIRED', `the signature was created ${nowSec - createdSec} s ago; at most ${maxSkewSec} s is accepted`);
  }
  if (createdSec - nowSec > maxSkewSec) {
    throw new HttpSignatureError('SIGNATURE_FROM_FUTURE', `the signature was created ${createdSec - nowSec} s ahead of the server clock; at most ${maxSkewSec} s is accepted`);
  }
}

export type DigestAlgorithm = 'sha-256' | 'sha-512';
const DIGEST_BYTES: Readonly<Record<DigestAlgorithm, number>> = { 'sha-256': SHA256_DIGEST_BYTES, 'sha-512': SHA512_DIGEST_BYTES };

/** The header value as covered, and the digests it carries that we know (sha-256 required); lengths are checked with the body. */
function parseContentDigest(header: string | undefined): { covered: string; digests: Map<DigestAlgorithm, Buffer> } {
  if (header === undefined) throw new HttpSignatureError('CONTENT_DIGEST_MISSING', 'send a Content-Digest header (RFC 9530) with the sha-256 of the body');
  boundLength('Content-Digest', header, MAX_CONTENT_DIGEST_HEADER_CHARS);
  const dictionary = parseHeaderDictionary('Content-Digest', header);
  if (!dictionary.has('sha-256')) throw new HttpSignatureError('CONTENT_DIGEST_MISSING', 'Content-Digest must carry a sha-256 member');
  const digests = new Map<DigestAlgorithm, Buffer>();
  for (const algorithm of ['sha-256', 'sha-512'] as const) {
    const member = dictionary.get(algorithm);
    if (!member) continue;
    if (member.kind !== 'item' || member.bare.kind !== 'bytes') malformed(`Content-Digest ${algorithm} must be a byte sequence`);
    digests.set(algorithm, member.bare.value);
  }
  return { covered: header.trim(), digests };
}

function verifierComponentValues(input: SignedHeadersInput, digestHeader: string): Map<string, string> {
  boundLength('the method', input.method, MAX_METHOD_CHARS);
  if (!METHOD_PATTERN.test(input.method)) malformed('the method is not an HTTP token');
  boundLength('the path', input.path, MAX_PATH_CHARS);
  boundLength('the query', input.query, MAX_QUERY_CHARS);
  const query = input.query === '' || input.query.startsWith('?') ? input.query : `?${input.query}`;
  return componentValues(input.method, input.path, query, digestHeader);
}

function verifiesWith(raw: Uint8Array, base: string, signatureBytes: Buffer): boolean {
  try {
    return verify(null, Buffer.from(base, 'ascii'), ed25519PublicKeyFromRaw(raw), signatureBytes);
  } catch {
    // A registered key that is not a usable ed25519 key verifies nothing.
    return false;
  }
}

function malformed(message: string): never {
  throw new HttpSignatureError('SIGNATURE_MALFORMED', message);
}

function boundLength(name: string, value: string, maxChars: number): void {
  if (value.length > maxChars) malformed(`${name} is ${value.length} characters; at most ${maxChars} are accepted`);
}

/** Header names folded to lower case; repeated fields combined with ", " as RFC 9110 §5.3 allows. */
function lowerCaseHeaders(headers: SignedHeadersInput['headers']): Map<string, string> {
  const folded = new Map<string, string>();
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    const text = typeof value === 'string' ? value : value.join(', ');
    const key = name.toLowerCase();
    const previous = folded.get(key);
    folded.set(key, previous === undefined ? text : `${previous}, ${text}`);
  }
  return folded;
}

// ---------------------------------------------------------------------------------------------
// The signature base (RFC 9421 §2.2 derived components, §2.5 the base)

function componentValues(method: string, path: string, query: string, digestHeader: string): Map<string, string> {
  return new Map([
    ['@method', method],
    // §2.2.6: an empty path is normalized to "/".
    ['@path', path === '' ? '/' : path],
    // §2.2.7: an absent or empty query is "?".
    ['@query', query === '' ? '?' : query],
    ['content-digest', digestHeader.trim()],
  ]);
}

function buildBase(components: readonly string[], values: ReadonlyMap<string, string>, signatureParamsValue: string): string {
  const lines = components.map((name) => {
    const value = values.get(name);
    if (value === undefined || !BASE_VALUE_PATTERN.test(value)) malformed(`component ${name} has no value or holds characters outside visible ASCII`);
    return `${serializeBareItem({ kind: 'string', value: name })}: ${value}`;
  });
  lines.push(`"@signature-params": ${signatureParamsValue}`);
  return lines.join('\n');
}

function paramsToSf(params: SignatureParams): SfParams {
  return new Map<string, SfBareItem>([
    ['created', { kind: 'integer', value: params.createdSec }],
    ['keyid', { kind: 'string', value: params.keyId }],
    ['nonce', { kind: 'string', value: params.nonce }],
    ['alg', { kind: 'string', value: SIGNATURE_ALGORITHM }],
  ]);
}

function serializeSignatureParams(components: readonly string[], params: SfParams): string {
  return `(${components.map((name) => serializeBareItem({ kind: 'string', value: name })).join(' ')})${serializeParams(params)}`;
}

// ---------------------------------------------------------------------------------------------
// RFC 8941 structured fields: the strict subset these headers need (no decimals), parsed by hand.

type SfBareItem =
  | { kind: 'integer'; value: number }
  | { kind: 'string'; value: string }
  | { kind: 'token'; value: string }
  | { kind: 'bytes'; value: Buffer }
  | { kind: 'boolean'; value: boolean };
type SfParams = Map<string, SfBareItem>;
type SfItem = { bare: SfBareItem; params: SfParams };
type SfMember = ({ kind: 'item' } & SfItem) | { kind: 'inner'; items: SfItem[]; params: SfParams };
type SfDictionary = Map<string, SfMember>;

class SfParseError extends Error {
  override readonly name = 'SfParseError';
  readonly code = 'STRUCTURED_FIELD_INVALID';
}

const KEY_START = /[a-z*]/;
const KEY_CHAR = /[a-z0-9_\-.*]/;
const TOKEN_START = /[A-Za-z*]/;
const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z:/]/;
const BASE64_CHAR = /[A-Za-z0-9+/=]/;
const DIGIT = /[0-9]/;

/** RFC 8941 §4.2.2, except that a repeated key is refused rather than overwritten: no ambiguity to exploit. */
function parseDictionary(input: string): SfDictionary {
  const cursor = new SfCursor(input);
  cursor.skipSpaces();
  const dictionary: SfDictionary = new Map();
  while (!cursor.done()) {
    const key = cursor.key();
    if (dictionary.has(key)) throw new SfParseError(`duplicate key "${key}"`);
    if (cursor.peek() === '=') {
      cursor.next();
      dictionary.set(key, cursor.itemOrInnerList());
    } else {
      dictionary.set(key, { kind: 'item', bare: { kind: 'boolean', value: true }, params: cursor.params() });
    }
    cursor.skipOptionalWhitespace();
    if (cursor.done()) break;
    if (cursor.next() !== ',') throw new SfParseError(`expected "," at ${cursor.position - 1}`);
    cursor.skipOptionalWhitespace();
    if (cursor.done()) throw new SfParseError('trailing comma');
  }
  return dictionary;
}

class SfCursor {
  position = 0;
  constructor(private readonly input: string) {}

  done(): boolean {
    return this.position >= this.input.length;
  }
  peek(): string {
    return this.input.charAt(this.position);
  }
  next(): string {
    if (this.done()) throw new SfParseError('unexpected end of input');
    return this.input.charAt(this.position++);
  }
  skipSpaces(): void {
    while (this.peek() === ' ') this.position++;
  }
  skipOptionalWhitespace(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.position++;
  }

  key(): string {
    if (!KEY_START.test(this.peek())) throw new SfParseError(`a key must start with a-z or "*" at ${this.position}`);
    return this.takeWhile(KEY_CHAR);
  }

  itemOrInnerList(): SfMember {
    if (this.peek() !== '(') return { kind: 'item', ...this.item() };
    this.next();
    const items: SfItem[] = [];
    for (;;) {
      this.skipSpaces();
      if (this.peek() === ')') {
        this.next();
        return { kind: 'inner', items, params: this.params() };
      }
      items.push(this.item());
      const after = this.peek();
      if (after !== ' ' && after !== ')') throw new SfParseError(`expected " " or ")" at ${this.position}`);
    }
  }

  item(): SfItem {
    return { bare: this.bareItem(), params: this.params() };
  }

  params(): SfParams {
    const params: SfParams = new Map();
    while (this.peek() === ';') {
      this.next();
      this.skipSpaces();
      const key = this.key();
      if (params.has(key)) throw new SfParseError(`duplicate parameter "${key}"`);
      let value: SfBareItem = { kind: 'boolean', value: true };
      if (this.peek() === '=') {
        this.next();
        value = this.bareItem();
      }
      params.set(key, value);
    }
    return params;
  }

  bareItem(): SfBareItem {
    const first = this.peek();
    if (first === '-' || DIGIT.test(first)) return this.integer();
    if (first === '"') return this.string();
    if (first === ':') return this.bytes();
    if (first === '?') return this.boolean();
    if (first !== '' && TOKEN_START.test(first)) return { kind: 'token', value: this.takeWhile(TOKEN_CHAR) };
    throw new SfParseError(`unexpected ${first === '' ? 'end of input' : `"${first}"`} at ${this.position}`);
  }

  private integer(): SfBareItem {
    const negative = this.peek() === '-';
    if (negative) this.next();
    const digits = this.takeWhile(DIGIT);
    if (digits === '' || digits.length > MAX_SF_INTEGER_DIGITS) throw new SfParseError('an integer has 1 to 15 digits');
    if (this.peek() === '.') throw new SfParseError('decimals are not accepted here');
    return { kind: 'integer', value: (negative ? -1 : 1) * Number(digits) };
  }

  private string(): SfBareItem {
    this.next();
    let value = '';
    for (;;) {
      const char = this.next();
      if (char === '"') return { kind: 'string', value };
      if (char === '\\') {
        const escaped = this.next();
        if (escaped !== '"' && escaped !== '\\') throw new SfParseError('only \\" and \\\\ may be escaped in a string');
        value += escaped;
      } else if (char < ' ' || char > '~') {
        throw new SfParseError('a string holds visible ASCII and spaces only');
      } else {
        value += char;
      }
    }
  }

  /** Strict: canonical, padded base64 only, so one signature has exactly one spelling. */
  private bytes(): SfBareItem {
    this.next();
    const text = this.takeWhile(BASE64_CHAR);
    if (this.next() !== ':') throw new SfParseError('a byte sequence ends with ":"');
    const value = Buffer.from(text, 'base64');
    if (value.toString('base64') !== text) throw new SfParseError('a byte sequence must be canonical, padded base64');
    return { kind: 'bytes', value };
  }

  private boolean(): SfBareItem {
    this.next();
    const digit = this.next();
    if (digit !== '0' && digit !== '1') throw new SfParseError('a boolean is ?0 or ?1');
    return { kind: 'boolean', value: digit === '1' };
  }

  private takeWhile(pattern: RegExp): string {
    const start = this.position;
    while (!this.done() && pattern.test(this.peek())) this.position++;
    return this.input.slice(start, this.position);
  }
}

function serializeBareItem(item: SfBareItem): string {
  switch (item.kind) {
    case 'integer':
      return String(item.value);
    case 'string':
      return `"${item.value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
    case 'token':
      return item.value;
    case 'bytes':
      return `:${item.value.toString('base64')}:`;
    case 'boolean':
      return item.value ? '?1' : '?0';
  }
}

function serializeParams(params: SfParams): string {
  let text = '';
  for (const [key, value] of params) {
    text += value.kind === 'boolean' && value.value ? `;${key}` : `;${key}=${serializeBareItem(value)}`;
  }
  return text;
}
