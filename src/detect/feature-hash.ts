/**
 * Constants of the injection classifier's feature hashing, shared by the JavaScript feature code
 * (injection/features.ts: training, reference and long texts) and the WebAssembly kernel's
 * `prepare` (kernel.ts), which must hash exactly alike. Changing any of them changes every bucket:
 * the model (injection/model.json) must then be retrained.
 */

/** Features are hashed into 2^FEATURE_BITS buckets. */
export const FEATURE_BITS = 18;
/** The FNV-1a prime of every feature hash. */
export const FNV_PRIME = 0x01000193;
/** The FNV-1a offset basis; word hashes start from it xor 1. */
export const FNV_OFFSET = 0x811c9dc5;
/** Multiplier of the word bigram mix. */
export const BIGRAM_MUL = 0x9e3779b1;
/** Final multiplier of bigram and n-gram buckets. */
export const BUCKET_MIX = 0x85ebca6b;
/** Seed of the character n-gram hashes. */
export const CHAR_SEED = 0x9e3779b9 | 0;
/** Seed of the shape n-gram hashes. */
export const SHAPE_SEED = 0x1234567;
/** Salts of the character 3- and 4-gram buckets and of the shape 3- and 4-gram buckets. */
export const CHAR3_SALT = 2 * 0x27d4eb2d;
export const CHAR4_SALT = 3 * 0x27d4eb2d;
export const SHAPE3_SALT = 0x55;
export const SHAPE4_SALT = 0x77;
