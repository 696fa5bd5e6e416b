// The LND adapters through ln-service's real code, against fakeLndGrpc: a stand-in for LND's gRPC services (LND cannot run here).

import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import type { AuthenticatedLnd } from 'ln-service';
import { describe, expect, it } from 'vitest';
import { encodeRequest } from '../../adapters/lightning/dev/bolt11.js';
import { DevKeyring } from '../../adapters/lightning/dev/dev-keys.js';
import { LndCoordinatorNode } from '../../adapters/lightning/lnd/lnd-coordinator.js';
import { LndContributorWallet } from '../../adapters/lightning/lnd/lnd-wallet.js';
import type { PayRequest } from '../../domain/ports/lightning.js';
import { expectLightningError } from '../contract/lightning.contract.js';

const invoicesLib = createRequire(import.meta.url)('invoices') as {
  parsePaymentRequest(args: { request: string }): { id: string; destination: string; mtokens?: string; tokens?: number; created_at: string; expires_at: string; cltv_delta: number; description?: string; payment?: string };
};

const NOW_MS = Date.UTC(2026, 0, 1);
const HEIGHT = 600;
const AMOUNT_MSAT = 50_000_000n;
const CLTV_DELTA = 80;
const keys = new DevKeyring(new Uint8Array(32).fill(9));
const payee = keys.wallet('lnd-fake-payee');

type ServiceError = Error & { code: number; details: string };
type Raw = Record<string, unknown>;
type Callback = (error: ServiceError | null, response?: unknown) => void;

function serviceError(code: number, details: string): ServiceError {
  return Object.assign(new Error(`${code} ${details}`), { code, details });
}

function stream(): EventEmitter & { cancel(): void } {
  return Object.assign(new EventEmitter(), { cancel: () => undefined });
}

function secret(): { preimageHex: string; paymentHash: string } {
  const preimage = randomBytes(32);
  return { preimageHex: preimage.toString('hex'), paymentHash: createHash('sha256').update(preimage).digest('hex') };
}

async function bolt11For(paymentHash: string, amountMsat = AMOUNT_MSAT, createdAtMs = NOW_MS): Promise<string> {
  return encodeRequest({ paymentHash, paymentSecretHex: 'aa'.repeat(32), amountMsat, createdAtMs, expirySec: 3_600, cltvDelta: CLTV_DELTA, description: 'escrow' }, payee);
}

/** LND's raw Payment message, as routerrpc streams it, with one HTLC on a direct channel. */
function rawPayment(bolt11: string, status: 'IN_FLIGHT' | 'SUCCEEDED' | 'FAILED', options: { feeMsat?: bigint; preimageHex?: string; failureReason?: string; timeLock?: number } = {}): Raw {
  const parsed = invoicesLib.parsePaymentRequest({ request: bolt11 });
  const amountMsat = BigInt(parsed.mtokens ?? '0');
  const feeMsat = options.feeMsat ?? 0n;
  const timeLock = options.timeLock ?? HEIGHT + CLTV_DELTA + 3;
  const htlcStatus = status === 'SUCCEEDED' ? 'SUCCEEDED' : status === 'FAILED' ? 'FAILED' : 'IN_FLIGHT';
  const hop = { amt_to_forward_msat: amountMsat.toString(), chan_id: '659706976665600', chan_capacity: '1000000', custom_records: {}, expiry: timeLock, fee_msat: '0', pub_key: payee.publicKeyHex, tlv_payload: true, mpp_record: { payment_addr: Buffer.alloc(32, 0xaa), total_amt_msat: amountMsat.toString() } };
  const route = { hops: [hop], total_amt_msat: (amountMsat + feeMsat).toString(), total_fees_msat: feeMsat.toString(), total_time_lock: timeLock };
  return {
    creation_time_ns: `${NOW_MS}000000`, fee_msat: feeMsat.toString(), fee_sat: (feeMsat / 1000n).toString(), failure_reason: options.failureReason ?? 'FAILURE_REASON_NONE',
    htlcs: [{ attempt_time_ns: `${NOW_MS}000000`, resolve_time_ns: status === 'IN_FLIGHT' ? '0' : `${NOW_MS + 1000}000000`, route, status: htlcStatus }],
    payment_hash: parsed.id, payment_index: '1', payment_preimage: options.preimageHex ?? '00'.repeat(32), payment_request: bolt11, status,
    value_msat: amountMsat.toString(), value_sat: (amountMsat / 1000n).toString(),
  };
}

type RawInvoice = { hash: string; bolt11: string; amountMsat: bigint; cltvDelta: number; memo: string; state: 'OPEN' | 'ACCEPTED' | 'SETTLED' | 'CANCELED'; preimageHex: string; htlcs: Raw[] };

/** What the fake answers to one sendPaymentV2: raw Payment updates or an error, in order; nothing at all for "silent". */
type SendScript = (params: Raw) => ReadonlyArray<Raw | ServiceError> | 'silent';

/** fakeLndGrpc: LND's gRPC services as ln-service calls them, answering with LND's raw message shapes. */
class FakeLndGrpc {
  readonly payments = new Map<string, Raw>();
  readonly invoices = new Map<string, RawInvoice>();
  readonly sent: Raw[] = [];
  readonly added: Raw[] = [];
  onSend: SendScript = (params) => [rawPayment(String(params.payment_request), 'IN_FLIGHT')];
  decodeError: ServiceError | null = null;

  lnd(): AuthenticatedLnd {
    return {
      default: { getInfo: this.getInfo, decodePayReq: this.decodePayReq, lookupInvoice: this.lookupInvoice },
      router: { trackPaymentV2: this.trackPaymentV2, sendPaymentV2: this.sendPaymentV2 },
      chain: { registerBlockEpochNtfn: this.registerBlockEpochNtfn },
      invoices: { addHoldInvoice: this.addHoldInvoice, settleInvoice: this.settleInvoice, cancelInvoice: this.cancelInvoice },
    } as unknown as AuthenticatedLnd;
  }

  accept(hash: string, amountMsat: bigint, expiryHeight: number): void {
    const invoice = this.invoices.get(hash)!;
    invoice.state = 'ACCEPTED';
    invoice.htlcs.push({ accept_height: HEIGHT, accept_time: String(NOW_MS / 1000), amt_msat: amountMsat.toString(), chan_id: '659706976665600', custom_records: {}, expiry_height: expiryHeight, htlc_index: '1', resolve_time: '0', state: 'ACCEPTED', mpp_total_amt_msat: amountMsat.toString() });
  }

  private readonly getInfo = (_request: Raw, callback: Callback) => {
    callback(null, {
      alias: 'fake', best_header_timestamp: String(NOW_MS / 1000), block_hash: '00'.repeat(32), block_height: HEIGHT, chains: [{ chain: 'bitcoin', network: 'regtest' }], color: '#3399ff',
      features: {}, identity_pubkey: keys.coordinator().publicKeyHex, num_active_channels: 1, num_peers: 1, num_pending_channels: 0, synced_to_chain: true, uris: [], version: '0.18.5-beta',
    });
  };

  private readonly decodePayReq = ({ pay_req }: { pay_req: string }, callback: Callback) => {
    if (this.decodeError) return callback(this.decodeError);
    const parsed = invoicesLib.parsePaymentRequest({ request: pay_req });
    const createdSec = Date.parse(parsed.created_at) / 1000;
    callback(null, {
      destination: parsed.destination, payment_hash: parsed.id, num_satoshis: String(parsed.tokens ?? 0), num_msat: parsed.mtokens ?? '0', timestamp: String(createdSec),
      expiry: String(Date.parse(parsed.expires_at) / 1000 - createdSec), description: parsed.description ?? '', description_hash: '', fallback_addr: '',
      cltv_expiry: String(parsed.cltv_delta), route_hints: [], payment_addr: Buffer.from(parsed.payment ?? '00'.repeat(32), 'hex'), features: {},
    });
  };

  private readonly trackPaymentV2 = ({ payment_hash }: { payment_hash: Buffer }) => {
    const sub = stream();
    const payment = this.payments.get(payment_hash.toString('hex'));
    setImmediate(() => (payment ? sub.emit('data', payment) : sub.emit('error', serviceError(5, "payment isn't initiated"))));
    return sub;
  };

  private readonly sendPaymentV2 = (params: Raw) => {
    this.sent.push(params);
    const sub = stream();
    const script = this.onSend(params);
    if (script !== 'silent') {
      setImmediate(() => {
        for (const step of script) {
          if (step instanceof Error) return sub.emit('error', step);
          this.payments.set(String(step.payment_hash), step);
          sub.emit('data', step);
        }
      });
    }
    return sub;
  };

  private readonly registerBlockEpochNtfn = () => {
    const sub = stream();
    setImmediate(() => sub.emit('data', { hash: Buffer.alloc(32, 1), height: HEIGHT }));
    return sub;
  };

  private readonly lookupInvoice = ({ r_hash }: { r_hash: Buffer }, callback: Callback) => {
    const invoice = this.invoices.get(r_hash.toString('hex'));
    if (!invoice) return callback(serviceError(5, 'unable to locate invoice'));
    callback(null, {
      add_index: '1', amt_paid_msat: '0', amt_paid_sat: '0', cltv_expiry: String(invoice.cltvDelta), creation_date: String(NOW_MS / 1000), description_hash: Buffer.alloc(0),
      expiry: '3600', features: {}, htlcs: invoice.htlcs, memo: invoice.memo, payment_addr: Buffer.alloc(32, 0xaa), payment_request: invoice.bolt11, private: false,
      r_hash: Buffer.from(invoice.hash, 'hex'), r_preimage: Buffer.from(invoice.state === 'SETTLED' ? invoice.preimageHex : '', 'hex'), settle_date: '0', settle_index: '0',
      state: invoice.state, value: (invoice.amountMsat / 1000n).toString(), value_msat: invoice.amountMsat.toString(),
    });
  };

  private readonly addHoldInvoice = (request: { hash: Buffer; value_msat: string; cltv_expiry: number; memo: string } & Raw, callback: Callback) => {
    this.added.push(request);
    const hash = request.hash.toString('hex');
    if (this.invoices.has(hash)) return callback(serviceError(2, 'invoice with payment hash already exists'));
    void bolt11For(hash, BigInt(request.value_msat)).then((bolt11) => {
      this.invoices.set(hash, { hash, bolt11, amountMsat: BigInt(request.value_msat), cltvDelta: request.cltv_expiry, memo: request.memo, state: 'OPEN', preimageHex: '', htlcs: [] });
      callback(null, { payment_request: bolt11, add_index: '1', payment_addr: Buffer.alloc(32, 0xaa) });
    });
  };

  /** As LND's invoicesrpc answers: a repeat settle succeeds, a canceled invoice cannot be settled. */
  private readonly settleInvoice = ({ preimage }: { preimage: Buffer }, callback: Callback) => {
    const invoice = this.invoices.get(createHash('sha256').update(preimage).digest('hex'));
    if (!invoice) return callback(serviceError(2, 'unable to locate invoice'));
    if (invoice.state === 'OPEN') return callback(serviceError(2, 'invoice still open'));
    if (invoice.state === 'CANCELED') return callback(serviceError(2, 'invoice already canceled'));
    invoice.state = 'SETTLED';
    invoice.preimageHex = preimage.toString('hex');
    callback(null, {});
  };

  /** As LND answers: a repeat cancel succeeds, a settled invoice cannot be canceled. */
  private readonly cancelInvoice = ({ payment_hash }: { payment_hash: Buffer }, callback: Callback) => {
    const invoice = this.invoices.get(payment_hash.toString('hex'));
    if (!invoice) return callback(serviceError(2, 'unable to locate invoice'));
    if (invoice.state === 'SETTLED') return callback(serviceError(2, 'invoice already settled'));
    invoice.state = 'CANCELED';
    callback(null, {});
  };
}

function coordinatorOn(fake: FakeLndGrpc, payStartTimeoutMs = 2_000): LndCoordinatorNode {
  return new LndCoordinatorNode(fake.lnd(), { nowMs: () => NOW_MS + 1_000, limits: { payStartTimeoutMs, rpcTimeoutMs: 2_000 } });
}

async function holdRequest(overrides: Partial<PayRequest> = {}): Promise<PayRequest> {
  const { paymentHash } = secret();
  return { bolt11: await bolt11For(paymentHash), paymentHash, amountMsat: AMOUNT_MSAT, maxFeeMsat: 25_000n, maxTimeoutHeight: HEIGHT + 500, ...overrides };
}

describe('LndCoordinatorNode over ln-service', () => {
  it('reads its key and height, and decodes a signed regtest request', async () => {
    const coordinator = coordinatorOn(new FakeLndGrpc());
    expect(await coordinator.publicKey()).toBe(keys.coordinator().publicKeyHex);
    expect(await coordinator.blockHeight()).toBe(HEIGHT);
    const request = await holdRequest();
    expect(await coordinator.decodeInvoice(request.bolt11)).toEqual({
      bolt11: request.bolt11, paymentHash: request.paymentHash, amountMsat: AMOUNT_MSAT, destination: payee.publicKeyHex, createdAtMs: NOW_MS,
      expiresAtMs: NOW_MS + 3_600_000, cltvDelta: CLTV_DELTA, network: 'regtest', description: 'escrow',
    });
  });

  it('sends every payment with max_fee_mtokens and the CLTV limit from maxTimeoutHeight, and returns in flight', async () => {
    const fake = new FakeLndGrpc();
    const request = await holdRequest();
    expect(await coordinatorOn(fake).pay(request)).toEqual({ status: 'in_flight', amountMsat: AMOUNT_MSAT, timeoutHeight: HEIGHT + CLTV_DELTA + 3 });
    expect(fake.sent).toHaveLength(1);
    expect(fake.sent[0]).toMatchObject({ payment_request: request.bolt11, fee_limit_msat: '25000', cltv_limit: request.maxTimeoutHeight - HEIGHT, max_parts: 1 });
  });

  it('passes a zero fee limit as zero, not as "no limit"', async () => {
    const fake = new FakeLndGrpc();
    await coordinatorOn(fake).pay(await holdRequest({ maxFeeMsat: 0n }));
    expect(fake.sent[0]).toMatchObject({ fee_limit_msat: '0' });
    expect(fake.sent[0]!.fee_limit_sat).toBeUndefined();
  });

  it('refuses a request for another hash or amount, or without an amount, before asking LND for anything but the decode', async () => {
    const fake = new FakeLndGrpc();
    const coordinator = coordinatorOn(fake);
    const request = await holdRequest();
    const wrongHash = await expectLightningError(coordinator.pay({ ...request, paymentHash: secret().paymentHash }), 'INVOICE_MISMATCH');
    expect(wrongHash.retryable).toBe(false);
    await expectLightningError(coordinator.pay({ ...request, amountMsat: AMOUNT_MSAT - 1n }), 'INVOICE_MISMATCH');
    const amountless = await bolt11For(request.paymentHash, 0n);
    await expectLightningError(coordinator.pay({ ...request, bolt11: amountless }), 'INVOICE_MISMATCH');
    expect(fake.sent).toHaveLength(0);
  });

  it('never sends for a hash already in flight or succeeded, and runs concurrent pays of one hash once', async () => {
    const fake = new FakeLndGrpc();
    const coordinator = coordinatorOn(fake);
    const request = await holdRequest();
    const [first, second] = await Promise.all([coordinator.pay(request), coordinator.pay(request)]);
    expect(second).toEqual(first);
    expect(await coordinator.pay(request)).toEqual(first);
    expect(fake.sent).toHaveLength(1);

    const preimageHex = 'cd'.repeat(32);
    fake.payments.set(request.paymentHash, rawPayment(request.bolt11, 'SUCCEEDED', { feeMsat: 1_500n, preimageHex }));
    expect(await coordinator.pay(request)).toEqual({ status: 'succeeded', amountMsat: AMOUNT_MSAT, feeMsat: 1_500n, preimageHex });
    expect(fake.sent).toHaveLength(1);
  });

  it('retries a failed hash, and reads the state when LND says the hash is already paid or in transition', async () => {
    const fake = new FakeLndGrpc();
    const coordinator = coordinatorOn(fake);
    const request = await holdRequest();
    fake.payments.set(request.paymentHash, rawPayment(request.bolt11, 'FAILED', { failureReason: 'FAILURE_REASON_NO_ROUTE' }));
    fake.onSend = () => {
      // Another process paid it between our read and our send.
      fake.payments.set(request.paymentHash, rawPayment(request.bolt11, 'SUCCEEDED', { preimageHex: 'ef'.repeat(32) }));
      return [serviceError(6, 'invoice is already paid')];
    };
    expect(await coordinator.pay(request)).toMatchObject({ status: 'succeeded', preimageHex: 'ef'.repeat(32) });
    expect(fake.sent).toHaveLength(1);
  });

  it('maps LND payment failures and refusals to failed states', async () => {
    const cases: ReadonlyArray<[string, string]> = [
      ['FAILURE_REASON_NO_ROUTE', 'NO_ROUTE'],
      ['FAILURE_REASON_INSUFFICIENT_BALANCE', 'INSUFFICIENT_BALANCE'],
      ['FAILURE_REASON_INCORRECT_PAYMENT_DETAILS', 'PAYEE_REJECTED'],
      ['FAILURE_REASON_TIMEOUT', 'TIMEOUT'],
    ];
    for (const [failureReason, failureCode] of cases) {
      const fake = new FakeLndGrpc();
      fake.onSend = (params) => [rawPayment(String(params.payment_request), 'FAILED', { failureReason })];
      expect(await coordinatorOn(fake).pay(await holdRequest())).toEqual({ status: 'failed', failureCode });
    }
    const expired = new FakeLndGrpc();
    expired.onSend = () => [serviceError(2, 'invoice expired. Valid until 2026-01-01 01:00:00 +0000 UTC')];
    expect(await coordinatorOn(expired).pay(await holdRequest())).toEqual({ status: 'failed', failureCode: 'INVOICE_EXPIRED' });
  });

  it('fails with NO_ROUTE, without sending, when maxTimeoutHeight leaves no room for the final CLTV', async () => {
    const fake = new FakeLndGrpc();
    expect(await coordinatorOn(fake).pay(await holdRequest({ maxTimeoutHeight: HEIGHT + CLTV_DELTA - 1 }))).toEqual({ status: 'failed', failureCode: 'NO_ROUTE' });
    expect(fake.sent).toHaveLength(0);
  });

  it('does not send a request that has already expired by its clock', async () => {
    const fake = new FakeLndGrpc();
    const { paymentHash } = secret();
    const stale = await bolt11For(paymentHash, AMOUNT_MSAT, NOW_MS - 7_200_000);
    expect(await coordinatorOn(fake).pay({ ...(await holdRequest()), bolt11: stale, paymentHash })).toEqual({ status: 'failed', failureCode: 'INVOICE_EXPIRED' });
    expect(fake.sent).toHaveLength(0);
  });

  it('gives up with a retryable TIMEOUT when LND neither starts nor refuses the payment', async () => {
    const fake = new FakeLndGrpc();
    fake.onSend = () => 'silent';
    const error = await expectLightningError(coordinatorOn(fake, 50).pay(await holdRequest()), 'TIMEOUT');
    expect(error.retryable).toBe(true);
  });

  it('knows nothing of a hash it never sent, and refuses a malformed hash', async () => {
    const coordinator = coordinatorOn(new FakeLndGrpc());
    expect(await coordinator.paymentState(secret().paymentHash)).toEqual({ status: 'unknown' });
    await expectLightningError(coordinator.paymentState('xyz'), 'PAYMENT_HASH_INVALID');
  });

  it('maps decode failures: garbage is INVOICE_INVALID, a dead node is NODE_UNAVAILABLE', async () => {
    const fake = new FakeLndGrpc();
    const coordinator = coordinatorOn(fake);
    fake.decodeError = serviceError(2, 'invalid bech32 string length 14');
    await expectLightningError(coordinator.decodeInvoice('lnbcrt1garbage'), 'INVOICE_INVALID');
    await expectLightningError(coordinator.decodeInvoice('   '), 'INVOICE_INVALID');
    fake.decodeError = serviceError(14, 'No connection established');
    expect((await expectLightningError(coordinator.decodeInvoice('lnbcrt1x'), 'NODE_UNAVAILABLE')).retryable).toBe(true);
  });
});

describe('LndContributorWallet over ln-service', () => {
  const terms = { amountMsat: AMOUNT_MSAT, expirySec: 3_600, cltvDelta: CLTV_DELTA, description: 'escrow' };

  it('creates a hold invoice for the given hash, amount in msat, CLTV delta and expiry', async () => {
    const fake = new FakeLndGrpc();
    const wallet = new LndContributorWallet(fake.lnd());
    const { paymentHash } = secret();
    const bolt11 = await wallet.createHoldInvoice({ paymentHash, ...terms });
    expect(invoicesLib.parsePaymentRequest({ request: bolt11 })).toMatchObject({ id: paymentHash, mtokens: '50000000', cltv_delta: CLTV_DELTA });
    expect(fake.added[0]).toMatchObject({ value_msat: '50000000', cltv_expiry: CLTV_DELTA, memo: 'escrow', expiry: 3_600 });
    expect(await wallet.holdInvoiceState(paymentHash)).toEqual({ status: 'open' });
  });

  it('returns the same invoice for a retry with the same terms, and refuses other terms as PAYMENT_HASH_REUSED', async () => {
    const wallet = new LndContributorWallet(new FakeLndGrpc().lnd());
    const { paymentHash } = secret();
    const bolt11 = await wallet.createHoldInvoice({ paymentHash, ...terms });
    expect(await wallet.createHoldInvoice({ paymentHash, ...terms })).toBe(bolt11);
    await expectLightningError(wallet.createHoldInvoice({ paymentHash, ...terms, amountMsat: AMOUNT_MSAT + 1_000n }), 'PAYMENT_HASH_REUSED');
  });

  it('reports a held HTLC as accepted, settles once and again as a no-op, then refuses to cancel', async () => {
    const fake = new FakeLndGrpc();
    const wallet = new LndContributorWallet(fake.lnd());
    const { paymentHash, preimageHex } = secret();
    await wallet.createHoldInvoice({ paymentHash, ...terms });
    await expectLightningError(wallet.settleHoldInvoice(preimageHex), 'HTLC_NOT_HELD');
    fake.accept(paymentHash, AMOUNT_MSAT, HEIGHT + CLTV_DELTA + 3);
    expect(await wallet.holdInvoiceState(paymentHash)).toEqual({ status: 'accepted', amountMsat: AMOUNT_MSAT, htlcExpiryHeight: HEIGHT + CLTV_DELTA + 3 });
    await wallet.settleHoldInvoice(preimageHex);
    await wallet.settleHoldInvoice(preimageHex);
    expect(await wallet.holdInvoiceState(paymentHash)).toEqual({ status: 'settled', preimageHex });
    await expectLightningError(wallet.cancelHoldInvoice(paymentHash), 'INVOICE_SETTLED');
  });

  it('cancels twice as a no-op, then refuses to settle; an unknown preimage is INVOICE_NOT_FOUND', async () => {
    const fake = new FakeLndGrpc();
    const wallet = new LndContributorWallet(fake.lnd());
    const { paymentHash, preimageHex } = secret();
    await wallet.createHoldInvoice({ paymentHash, ...terms });
    fake.accept(paymentHash, AMOUNT_MSAT, HEIGHT + 83);
    await wallet.cancelHoldInvoice(paymentHash);
    await wallet.cancelHoldInvoice(paymentHash);
    expect(await wallet.holdInvoiceState(paymentHash)).toEqual({ status: 'canceled' });
    await expectLightningError(wallet.settleHoldInvoice(preimageHex), 'INVOICE_CANCELED');
    await expectLightningError(wallet.settleHoldInvoice(secret().preimageHex), 'INVOICE_NOT_FOUND');
    expect(await wallet.holdInvoiceState(secret().paymentHash)).toEqual({ status: 'unknown' });
  });

  it('refuses bad terms before calling LND', async () => {
    const fake = new FakeLndGrpc();
    const wallet = new LndContributorWallet(fake.lnd());
    const { paymentHash } = secret();
    await expectLightningError(wallet.createHoldInvoice({ paymentHash, ...terms, amountMsat: 0n }), 'INVOICE_REQUEST_INVALID');
    await expectLightningError(wallet.createHoldInvoice({ paymentHash, ...terms, cltvDelta: 0 }), 'INVOICE_REQUEST_INVALID');
    await expectLightningError(wallet.createHoldInvoice({ paymentHash, ...terms, description: 'x'.repeat(640) }), 'INVOICE_REQUEST_INVALID');
    await expectLightningError(wallet.createHoldInvoice({ ...terms, paymentHash: 'nothex' }), 'PAYMENT_HASH_INVALID');
    await expectLightningError(wallet.settleHoldInvoice('00'), 'PREIMAGE_INVALID');
    expect(fake.added).toHaveLength(0);
  });
});
