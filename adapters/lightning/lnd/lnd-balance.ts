// What the coordinator's channels hold on its side before fees, from ln-service's getChannels, in msat.

import type { GetChannelsResult } from 'ln-service';

type Channel = GetChannelsResult['channels'][number];
export type LndChannel = Pick<Channel, 'capacity' | 'local_balance' | 'remote_balance' | 'is_partner_initiated'> & {
  pending_payments: ReadonlyArray<Pick<Channel['pending_payments'][number], 'tokens'>>;
};

/**
 * The opener pays the commitment fee and the anchors out of its own balance, and both grow when an HTLC adds an
 * output, so the bare local balance of a channel this node opened also moves by fee changes. Everything in such a
 * channel that is neither the peer's nor in an HTLC (capacity − remote − HTLCs) moves by exactly what is sent; in a
 * channel the peer opened, the local balance already does. In-flight HTLCs count as sent. Whole sats: LND reports
 * channel balances in sat. An upper bound on what can be sent: reserves and fees still come off it.
 */
export function channelFundsMsat(channels: ReadonlyArray<LndChannel>): bigint {
  const sats = channels.reduce((sum, channel) => sum + ourSideSats(channel), 0);
  return BigInt(sats) * 1000n;
}

function ourSideSats(channel: LndChannel): number {
  if (channel.is_partner_initiated) return channel.local_balance;
  const htlcSats = channel.pending_payments.reduce((sum, htlc) => sum + htlc.tokens, 0);
  return channel.capacity - channel.remote_balance - htlcSats;
}
