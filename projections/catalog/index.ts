// The log catalog: the streams of a log kept outside SQL (the split composition), listed in SQL for the audit.

export { LOG_CATALOG_SCHEMA, logCatalogProjector } from './catalog-projector.js';
export { catalogEventCount, catalogHeads, catalogInvoiceStreams, catalogStreams, type CatalogStream } from './queries.js';
