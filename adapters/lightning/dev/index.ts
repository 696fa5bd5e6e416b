// The development Lightning network (a simulation, never real money): what the composition root and tests import.

export { DevLightningNetwork, DEV_LIGHTNING_DEFAULTS, type DevFunds, type DevLightningOptions } from './dev-lightning-network.js';
export { DevFaults, type UnresolvedOutcome } from './dev-faults.js';
export { DEV_ROUTE, routingFeeMsat, paymentTimeoutHeight } from './dev-payments.js';
export { DEV_INVOICE_LIMITS } from './dev-invoices.js';
export { PLAIN_INVOICE_CLTV_DELTA } from './dev-wallet.js';
export { DEV_NETWORK } from './bolt11.js';
export { DEV_STATE_FILE } from './dev-store.js';
