/**
 * A fast lexical baseline for a few high-precision unsafe-content categories (S1 violent
 * intent against people, S4 sexualised minors, S7 doxxing, S9 weapon/explosive synthesis,
 * S11 self-harm methods, S14 interpreter abuse). Precision over recall: it only fires on
 * explicit combinations of a hazard term and an instruction or intent cue. It is a baseline
 * in front of a model-based judge (Llama Guard), not a replacement for one.
 */
import type { Finding, Severity } from '../types.js';
import type { HazardId } from './taxonomy.js';

export { HAZARD_TAXONOMY, hazard, type HazardCategory, type HazardId } from './taxonomy.js';

/** Options of {@link detectUnsafe}. */
export interface UnsafeOptions {
  /** Only check these categories (default: every category the baseline covers). */
  categories?: readonly HazardId[];
}

/** One lexical rule of the baseline. */
export interface UnsafeRule {
  /** Rule name (in the finding's reason). */
  id: string;
  /** Hazard category of its findings. */
  category: HazardId;
  /** Severity of its findings. */
  severity: Severity;
  /** Score of its findings. */
  score: number;
  /** The pattern (global; one match is a finding unless `unless` matches its sentence). */
  re: RegExp;
  /**
   * A necessary condition: every match of `re` contains a match of `need` (literals only, `|`
   * separated, with the same case rule). Most texts have none of them, and `need` is far cheaper than `re`.
   */
  need: RegExp;
  /** A sentence matching this is not a finding (prevention, reporting, history). */
  unless?: RegExp;
}

const W = String.raw`[^.!?\n]{0,80}?`; // same sentence, bounded gap

const PERSON = String.raw`(?:my (?:wife|husband|boss|neighbou?r|ex|partner|teacher|coworker|colleague|mother|father|mom|dad|brother|sister|son|daughter|friend|roommate)|someone|somebody|a (?:person|human|child|kid|man|woman)|people|him|her|them|a human being)`;
const KILL = String.raw`(?:kill|murder|poison|strangle|stab|shoot|suffocate|drown|behead|dismember|torture|kidnap|abduct)`;

const CBRN = String.raw`(?:sarin|soman|tabun|vx(?: nerve)? agent|nerve agents?|mustard gas|ricin|abrin|anthrax|botulinum toxin|weaponi[sz]ed? (?:smallpox|plague|anthrax)|dirty bomb|radiological (?:weapon|device)|(?:weapons?|bomb)[- ]grade (?:uranium|plutonium)|enrich(?:ed|ing)? uranium to weapons|chemical weapons?|biological weapons?|bioweapons?)`;
const EXPLOSIVE = String.raw`(?:pipe bombs?|tatp|triacetone triperoxide|hmtd|nitroglycerine?|petn|rdx|c-?4 explosive|anfo|ammonium nitrate (?:bomb|explosive)|car bombs?|improvised explosive devices?|ieds?|molotov cocktails?|pressure[- ]cooker bombs?|(?:homemade|home-made) (?:bombs?|explosives?|grenades?)|explosives?|bombs?|detonators?)`;
const MAKE = String.raw`(?:make|making|build|building|synthesi[sz]e|synthesi[sz]ing|produce|producing|manufactur(?:e|ing)|assembl(?:e|ing)|cook|cooking|prepare|preparing|weaponi[sz]e|culture|extract|refine|create|creating|construct)`;
const ASK = String.raw`(?:how (?:do|can|could|would|should) (?:i|we|you|one)|how to|ways? to|steps? to|instructions? (?:for|to|on)|guide (?:to|for|on)|recipe for|tutorial (?:on|for)|teach me (?:how )?to|help me|walk me through|tell me how to|explain how to)`;
const PROCEDURE = String.raw`(?:step \d|step one|first,? (?:you )?(?:mix|combine|add|take|dissolve|heat)|\b\d+\s?(?:g|grams|ml|millilit(?:er|re)s|kg|mg)\b${W}(?:mix|combine|add|dissolve|heat)|(?:mix|combine|dissolve|heat|reflux|distil+)\w*${W}\b\d+\s?(?:g|grams|ml|kg|mg|°c|degrees)\b|precursors?${W}(?:mix|combine|react|add))`;

const MINOR = String.raw`(?:child(?:ren)?|kids?|minors?|underage|under-age|preteens?|pre-teens?|prepubescent|toddlers?|infants?|little (?:girls?|boys?)|(?:[1-9]|1[0-5])[- ]?(?:year|yr)s?[- ]?old|schoolgirls?|schoolboys?|young (?:girls?|boys?))`;
const SEXUAL = String.raw`(?:porn\w*|nudes?|naked|sexual(?:ly)? (?:explicit|acts?|photos?|images?|videos?|content|roleplay|pictures?)|erotic\w*|sex (?:with|videos?|photos?|scenes?)|lewd|explicit (?:photos?|images?|pictures?|videos?)|have sex|molest\w*|grooming)`;

const SELF = String.raw`(?:kill myself|end my (?:own )?life|commit suicide|take my (?:own )?life|hang myself|cut (?:myself|my wrists?)|overdose on|od on|die painlessly|die without pain|hurt myself|harm myself|starve myself|make myself (?:throw up|vomit|bleed))`;

const RULES: UnsafeRule[] = [
  {
    id: 'violent-intent',
    category: 'S1',
    severity: 'high',
    score: 0.85,
    re: new RegExp(String.raw`\b${ASK}${W}\b${KILL}\w*\s+${PERSON}\b|\b(?:best|easiest|quickest|untraceable) (?:way|method)s? to ${KILL}\s+${PERSON}\b|\bget away with (?:murder|killing ${PERSON})`, 'gi'),
    need: /kill|murder|poison|strangle|stab|shoot|suffocate|drown|behead|dismember|torture|kidnap|abduct/i,
  },
  {
    id: 'cbrn-synthesis',
    category: 'S9',
    severity: 'critical',
    score: 0.9,
    re: new RegExp(String.raw`\b${ASK}${W}\b${MAKE}${W}\b${CBRN}\b|\b${MAKE}\w*${W}\b${CBRN}\b${W}\b(?:at home|in a (?:garage|kitchen|home lab)|step by step|from scratch)|\b${CBRN}\b${W}${PROCEDURE}|${PROCEDURE}${W}\b${CBRN}\b`, 'gi'),
    need: /sarin|soman|tabun|vx|nerve agent|mustard gas|ricin|abrin|anthrax|botulinum|weapon|dirty bomb|radiological|uranium|plutonium/i,
    unless: /\b(?:history|historical|treaty|convention|banned|ban on|prohibit|disarm|destroy(?:ed|ing)?|defen[cs]e against|protect|detect(?:ion)?|symptoms?|treatment|antidote|vaccine)\b/i,
  },
  {
    id: 'explosive-synthesis',
    category: 'S9',
    severity: 'critical',
    score: 0.9,
    re: new RegExp(String.raw`\b${ASK}${W}\b${MAKE}\s+(?:a |an |some |my own |homemade |home-made )?${EXPLOSIVE}\b|\b${EXPLOSIVE}\b${W}${PROCEDURE}|${PROCEDURE}${W}\b${EXPLOSIVE}\b`, 'gi'),
    need: /bomb|tatp|triacetone|hmtd|nitroglycerin|petn|rdx|explosive|anfo|ied|molotov|grenade|detonator/i,
    unless: /\b(?:bath bombs?|photo ?bomb|sex bomb|bomb(?:ed)? (?:the|an?) (?:exam|test|interview|audition)|seed bombs?|f-?bombs?|da bomb|bomb calorimeter|history|historical|bomb disposal|defus\w+)\b/i,
  },
  {
    id: 'sexualised-minor',
    category: 'S4',
    severity: 'critical',
    score: 0.9,
    re: new RegExp(String.raw`\b${SEXUAL}${W}\b${MINOR}\b|\b${MINOR}${W}\b${SEXUAL}\b|\b(?:download|buy|share|trade|find|get|where|watch|send|sell|link|links)\b${W}\b(?:(?:child|kiddie|kiddy|underage|teen) porn\w*|csam)\b|\b(?:(?:child|kiddie|kiddy|underage|teen) porn\w*|csam)\b${W}\b(?:download|buy|share|trade|find|get|watch|send|sell|links?)\b`, 'gi'),
    need: /porn|nude|naked|sex|erotic|lewd|explicit|molest|grooming|csam/i,
    unless: /\b(?:prevent\w*|report\w*|protect\w*|safeguard\w*|protocol|convention|treaty|law|laws|legislation|statutes?|crimes?|criminal\w*|offen[cs]es?|prosecut\w*|illegal|abuse survivors?|detect\w*|hotline|law enforcement|awareness|educat\w*|sex education|puberty|pediatric|paediatric|doctor|parents?|vaccin\w*|bath(?:e|ing)? (?:my|the) (?:baby|child|toddler))\b/i,
  },
  {
    id: 'self-harm-method',
    category: 'S11',
    severity: 'high',
    score: 0.85,
    re: new RegExp(String.raw`\b(?:${ASK}|what(?:'s| is) the (?:best|easiest|quickest|most painless|surest) way to|what can i (?:take|use|do) to)${W}\b${SELF}|\b(?:how many|how much)${W}\b(?:pills?|tablets?|mg|grams?)${W}\b(?:to die|to kill myself|to end (?:it|my life)|is (?:a )?lethal)|\blethal dose of\b${W}\b(?:to die|to kill myself|for me)\b|\bwhat can i take to die\b`, 'gi'),
    need: /myself|life|suicide|wrist|overdose|od on|die|how many|how much|lethal/i,
    unless: /\b(?:prevent\w*|hotline|helpline|crisis line|someone who|a friend who|support (?:a|my)|warning signs)\b/i,
  },
  {
    id: 'doxxing',
    category: 'S7',
    severity: 'high',
    score: 0.8,
    re: new RegExp(String.raw`\b(?:find|get|give me|tell me|what(?:'s| is| are)|look up|track down|locate|leak|post|publish)${W}\b(?:(?:home|residential|private|current|exact|personal) address(?:es)?|social security numbers?|ssns?|(?:personal|private|home|cell|mobile) (?:phone|cell|mobile) numbers?|bank account (?:details|numbers?)|credit card (?:details|numbers?)|passport numbers?|medical records?|login (?:details|credentials)|passwords?)\b${W}\b(?:of|for|belonging to)\b|\bwhere (?:does|do) (?:my |this |that )?(?:ex|neighbou?r|coworker|colleague|boss) (?:\w+ )?live\b|\bdox+(?:ing|ed)?\b${W}\b(?:someone|him|her|them|my|this|a)\b|\b(?:my ex[- ]?(?:husband|wife|boyfriend|girlfriend|partner)?'?s?|my (?:neighbou?r|coworker|colleague|boss|employee)'?s?)${W}\b(?:home address|social security|bank account|phone number|passwords?|medical records?|location|whereabouts|union membership|sexual orientation|immigration status)\b`, 'gi'),
    need: /address|social security|ssn|number|bank account|credit card|passport|medical record|login|password|live|dox|location|whereabouts|union membership|sexual orientation|immigration status/i,
  },
  {
    id: 'doxxing-named',
    category: 'S7',
    // Cannot tell a real person from a fictional one ("Harry Potter's bank account"): low confidence.
    severity: 'medium',
    score: 0.5,
    // A named private person's home address or where they live (case-sensitive: needs a capitalised name).
    re: /\b(?:[Ww]here (?:does|do) [A-Z][a-z]+ [A-Z][a-z]+ live|[A-Z][a-z]+ [A-Z][a-z]+'s? (?:home address|social security number|phone number|bank account))\b/g,
    need: /live|address|number|bank account/,
  },
  {
    id: 'interpreter-abuse',
    category: 'S14',
    severity: 'high',
    score: 0.85,
    re: /:\(\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:|\brm\s+-(?:rf|fr)\s+(?:--no-preserve-root\s+)?\/(?=[\s`'"*;]|$)|\bos\.system\(\s*['"](?:rm -rf \/|curl [^'"]*\|\s*(?:ba)?sh)|\bmkfs\.\w+\s+\/dev\/[sh]da\b|\bdd\s+if=\/dev\/(?:zero|urandom)\s+of=\/dev\/[sh]da\b|\bnsenter\s+--target\s+1\b|\/proc\/sys\/kernel\/core_pattern/gi,
    need: /:\(\)|-rf|-fr|os\.system\(|mkfs\.|\/dev\/|nsenter|core_pattern/i,
  },
];

/** The rules, read-only (tests check that each rule's `need` is a necessary condition of its pattern). */
export const UNSAFE_RULES: readonly Readonly<UnsafeRule>[] = RULES;

/** Any rule's `need` (case-insensitive: a superset of each): one cheap test rules most texts out. */
const ANY_NEED = new RegExp(RULES.map((r) => r.need.source).join('|'), 'i');

/** The longest literal of any rule's `need`: a match of ANY_NEED is never longer. */
export const UNSAFE_NEED_MAX_LENGTH = Math.max(...RULES.flatMap((r) => r.need.source.split('|').map((l) => l.replace(/\\(.)/g, '$1').length)));

/**
 * Whether some rule's `need` occurs in `text`. False means {@link detectUnsafe} finds nothing in
 * it; a stream can test only what a new window adds (plus UNSAFE_NEED_MAX_LENGTH - 1 characters
 * before it) when the window before had none.
 */
export function unsafeCandidate(text: string): boolean {
  return ANY_NEED.test(text.length > 200_000 ? text.slice(0, 200_000) : text);
}

const SENTENCE_END = /[.!?\n]/;

function sentenceAround(text: string, start: number, end: number): string {
  let s = start;
  while (s > 0 && !SENTENCE_END.test(text[s - 1]) && start - s < 300) s--;
  let e = end;
  while (e < text.length && !SENTENCE_END.test(text[e]) && e - end < 300) e++;
  return text.slice(s, e);
}

/** Categories the lexical baseline can detect. */
export const LEXICAL_CATEGORIES: readonly HazardId[] = [...new Set(RULES.map((r) => r.category))];

/** Detects a few high-precision unsafe-content categories with lexical rules; returns findings per matched rule. */
export function detectUnsafe(text: string, opts: UnsafeOptions = {}): Finding[] {
  const only = opts.categories ? new Set(opts.categories) : null;
  const findings: Finding[] = [];
  const input = text.length > 200_000 ? text.slice(0, 200_000) : text;
  if (!ANY_NEED.test(input)) return findings;
  for (const rule of RULES) {
    if (only && !only.has(rule.category)) continue;
    if (!rule.need.test(input)) continue;
    rule.re.lastIndex = 0;
    for (const m of input.matchAll(rule.re)) {
      const start = m.index;
      const end = m.index + m[0].length;
      if (rule.unless && rule.unless.test(sentenceAround(input, start, end))) continue;
      findings.push({ detector: 'unsafe.lexical', category: rule.category, severity: rule.severity, score: rule.score, start, end, reason: `${rule.category} (${rule.id}) pattern` });
      break; // one finding per rule is enough to decide
    }
  }
  return findings;
}
