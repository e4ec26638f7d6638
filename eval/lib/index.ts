/** Shared evaluation helpers (dataset loading, split rule, metrics, tables). */
export * from './datasets.js';
export * from './metrics.js';
