// The log catalog: the streams of a log kept outside SQL (the split composition), listed in SQL for the audit.

export { applyCatalogEntries, catalogEntryOf, catchUpCatalogIn, LOG_CATALOG_SCHEMA, logCatalogProjector, type CatalogEntry } from './catalog-projector.js';
export { catalogEventCount, catalogHeads, catalogInvoiceStreams, catalogStreams, type CatalogStream } from './queries.js';
