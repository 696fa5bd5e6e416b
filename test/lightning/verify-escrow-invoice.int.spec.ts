// A contributor's hold invoice is checked against the escrow before any payment: real BOLT11 from dev wallets.

import { describe, expect, it } from 'vitest';
import { DevLightningNetwork } from '../../adapters/lightning/dev/dev-lightning-network.js';
import { PreimageDeriver } from '../../adapters/lightning/preimages.js';
import { verifyEscrowInvoice } from '../../adapters/lightning/verify-escrow-invoice.js';

const NOW_MS = 1_700_000_000_000;

describe('verifyEscrowInvoice', () => {
  it('accepts the right invoice and refuses a wrong hash, amount, destination, expiry or CLTV with its own code', async () => {
    const network = await DevLightningNetwork.open({ nowMs: () => NOW_MS, seed: Buffer.alloc(32, 3) });
    try {
      const alice = network.wallet('alice');
      const mallory = network.wallet('mallory');
      const node = network.coordinator();
      const escrow = new PreimageDeriver(Buffer.alloc(32, 1)).escrow('asg-1');
      const other = new PreimageDeriver(Buffer.alloc(32, 1)).escrow('asg-2');
      const terms = { amountMsat: 1_000_000n, expirySec: 3600, cltvDelta: 144, description: 'escrow asg-1' };
      const expected = { paymentHash: escrow.paymentHash, amountMsat: 1_000_000n, destination: await alice.publicKey(), nowMs: NOW_MS, minRemainingMs: 60_000, maxCltvDelta: 144, network: 'regtest' };
      const decode = async (bolt11: string) => node.decodeInvoice(bolt11);

      const good = await decode(await alice.createHoldInvoice({ ...terms, paymentHash: escrow.paymentHash }));
      expect(() => verifyEscrowInvoice(good, expected)).not.toThrow();
      const refusal = (invoice: typeof good, overrides = {}) => {
        try {
          verifyEscrowInvoice(invoice, { ...expected, ...overrides });
        } catch (error) {
          return error as { code: string; message: string; retryable: boolean };
        }
        throw new Error('expected a refusal');
      };
      expect(refusal(await decode(await alice.createHoldInvoice({ ...terms, paymentHash: other.paymentHash })))).toMatchObject({ code: 'INVOICE_WRONG_HASH', retryable: false });
      expect(refusal(good, { amountMsat: 2_000_000n })).toMatchObject({ code: 'INVOICE_WRONG_AMOUNT' });
      const stolen = await decode(await mallory.createHoldInvoice({ ...terms, paymentHash: escrow.paymentHash }));
      expect(refusal(stolen)).toMatchObject({ code: 'INVOICE_WRONG_DESTINATION' });
      expect(refusal(good, { nowMs: NOW_MS + 3_590_000 })).toMatchObject({ code: 'INVOICE_EXPIRES_TOO_SOON' });
      expect(refusal(good, { maxCltvDelta: 40 })).toMatchObject({ code: 'INVOICE_CLTV_TOO_LARGE' });
      expect(refusal(good, { network: 'bitcoin' }).message).toMatch(/create a new hold invoice/);
    } finally {
      await network.close();
    }
  });
});
