/** Types shared by the PII recognizers. */

/** The PII entity types (finding categories). */
export const PII_ENTITIES = [
  'EMAIL', 'PHONE', 'CREDIT_CARD', 'IBAN', 'US_SSN', 'US_ITIN', 'UK_NINO', 'IP_ADDRESS', 'MAC_ADDRESS',
  'DATE_OF_BIRTH', 'STREET_ADDRESS', 'PERSON', 'LOCATION', 'CRYPTO_WALLET', 'PASSPORT', 'DRIVER_LICENSE',
] as const;

/** One PII entity type, e.g. `EMAIL`. */
export type PiiEntity = (typeof PII_ENTITIES)[number];

/** A candidate produced by a recognizer, before context scoring, lists and thresholds. */
export interface RawMatch {
  /** Entity type. */
  entity: PiiEntity;
  /** Span start (UTF-16 offset). */
  start: number;
  /** Span end (exclusive). */
  end: number;
  /** Base confidence before context words. */
  score: number;
  /** Short reason; never contains the value. */
  reason: string;
  /** When true the candidate is dropped unless a context word is near. */
  needsContext?: boolean;
}

/** What a recognizer sees: the text, its lower-cased copy and resolved options. */
export interface ScanInput {
  /** The original text. */
  text: string;
  /** `text.toLowerCase()`, same length for the scripts we care about (checked by the caller). */
  lower: string;
  /** Default region for national phone numbers (ISO 3166 alpha-2). */
  defaultRegion: string;
  /** Extra regions tried for phone numbers written without a country code. */
  phoneRegions: readonly string[];
}

/** A recognizer family: finds candidates of one or more entity types. */
export interface Recognizer {
  /** Entity types this recognizer can emit. */
  entities: readonly PiiEntity[];
  /** Returns candidates; must run in time linear in the text length. */
  detect(input: ScanInput): RawMatch[];
}
