// Dev BOLT11: real signed lnbcrt requests round-trip, and any edit (even re-checksummed) or foreign network is refused.

import { createRequire } from 'node:module';
import { bech32 } from 'bech32';
import { describe, expect, it } from 'vitest';
import { decodeRequest, encodeRequest } from '../../adapters/lightning/dev/bolt11.js';
import { DevKeyring, signHash } from '../../adapters/lightning/dev/dev-keys.js';
import { expectLightningError } from '../contract/lightning.contract.js';
import { SEED, START_MS, secret } from './dev-fixtures.js';

const keys = new DevKeyring(SEED);
const payee = keys.wallet('alice');
const fields = {
  paymentHash: secret('bolt11').paymentHash,
  paymentSecretHex: keys.secretHex('payment-secret/test'),
  amountMsat: 123_456_789n,
  createdAtMs: START_MS + 999,
  expirySec: 900,
  cltvDelta: 144,
  description: 'escrow for assignment asg-1',
};

/** Re-encodes with a valid checksum, so only the signature can tell that something changed. */
function reencode(request: string, edit: (prefix: string, words: number[]) => { prefix: string; words: number[] }): string {
  const { prefix, words } = bech32.decode(request, Number.MAX_SAFE_INTEGER);
  const edited = edit(prefix, [...words]);
  return bech32.encode(edited.prefix, edited.words, Number.MAX_SAFE_INTEGER);
}

describe('dev BOLT11 requests', () => {
  it('round-trips every field of a signed regtest request', async () => {
    const request = await encodeRequest(fields, payee);
    expect(request.startsWith('lnbcrt')).toBe(true);
    expect(await decodeRequest(request)).toEqual({
      bolt11: request,
      paymentHash: fields.paymentHash,
      amountMsat: 123_456_789n,
      destination: payee.publicKeyHex,
      createdAtMs: START_MS,
      expiresAtMs: START_MS + 900_000,
      cltvDelta: 144,
      network: 'regtest',
      description: fields.description,
    });
  });

  it('derives the same 33-byte compressed keys from the same seed, and different ones per wallet', () => {
    expect(new DevKeyring(SEED).wallet('alice')).toEqual(payee);
    expect(payee.publicKeyHex).toMatch(/^0[23][0-9a-f]{64}$/);
    expect(keys.wallet('bob').publicKeyHex).not.toBe(payee.publicKeyHex);
    expect(keys.coordinator().publicKeyHex).not.toBe(payee.publicKeyHex);
    expect(new DevKeyring(new Uint8Array(32).fill(1)).wallet('alice').publicKeyHex).not.toBe(payee.publicKeyHex);
  });

  it('refuses a request whose data was edited and re-checksummed: the signature no longer verifies', async () => {
    const request = await encodeRequest(fields, payee);
    const editedData = reencode(request, (prefix, words) => {
      words[3] = words[3]! ^ 1; // inside the timestamp
      return { prefix, words };
    });
    const editedAmount = reencode(request, (prefix, words) => ({ prefix: prefix.replace('1234567890p', '9234567890p'), words }));
    for (const tampered of [editedData, editedAmount]) {
      const error = await expectLightningError(decodeRequest(tampered), 'INVOICE_INVALID');
      expect(error.message).toMatch(/signature/);
      expect(error.retryable).toBe(false);
    }
  });

  it('refuses a broken checksum, garbage and the empty string', async () => {
    const request = await encodeRequest(fields, payee);
    const flipped = request.slice(0, 40) + (request[40] === 'q' ? 'p' : 'q') + request.slice(41);
    for (const bad of [flipped, 'lnbcrt1qqqq', 'hello', '']) await expectLightningError(decodeRequest(bad), 'INVOICE_INVALID');
  });

  it('refuses a correctly signed request for another network', async () => {
    const invoices = createRequire(import.meta.url)('invoices');
    const unsigned = invoices.createUnsignedRequest({ destination: payee.publicKeyHex, id: fields.paymentHash, network: 'bitcoin', mtokens: '1000', description: 'mainnet', cltv_delta: 40 });
    const signature = Buffer.from(await signHash(Buffer.from(unsigned.hash, 'hex'), payee.secretKey)).toString('hex');
    const { request } = invoices.createSignedRequest({ destination: payee.publicKeyHex, hrp: unsigned.hrp, signature, tags: unsigned.tags });
    expect(request.startsWith('lnbc1')).toBe(true);
    const error = await expectLightningError(decodeRequest(request), 'INVOICE_INVALID');
    expect(error.message).toMatch(/regtest/);
  });
});
