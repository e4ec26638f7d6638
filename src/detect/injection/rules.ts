/**
 * Rule layer of the injection/jailbreak detector: phrase families per category and
 * language, compiled once into linear-time regular expressions that run on the folded
 * matching view (lowercase, accent-free, homoglyphs and leetspeak folded).
 *
 * Every pattern is built from literal alternations joined by bounded gaps (`{0,n}` over
 * single-word steps), so the work per start position is bounded and a scan is linear.
 */

import { KERNEL, KERNEL_PREP_MAX, type Kernel } from '../kernel.js';

/** Categories the rules report. */
export type RuleCategory =
  | 'instruction_override'
  | 'persona_hijack'
  | 'prompt_extraction'
  | 'fake_turn'
  | 'delimiter_injection'
  | 'payload_splitting'
  | 'refusal_suppression'
  | 'indirect_instruction';

/** One compiled rule. */
export interface Rule {
  id: string;
  category: RuleCategory;
  /** Language tag of the phrase family (`en`, `fr`, … or `any`). */
  lang: string;
  /** Confidence when it matches alone. */
  score: number;
  re: RegExp;
  /**
   * Cheap prefilter: every group must have at least one word prefix present in the text
   * (prefixes of at most 6 characters), otherwise the regex cannot match and is skipped.
   */
  anchors?: string[][];
  /** Cheap substring prefilter for language-neutral rules. */
  needles?: string[];
  /**
   * Word prefixes (`p:`) or words (`w:`) at which every match must start (the literal starts of
   * the rule's first element). When set, the rule runs as a sticky regex at those positions only.
   */
  lead?: string[];
  /** Characters at which a match may also start (alternatives that start with a symbol), used with `lead`. */
  leadChars?: string[];
  /** Sticky copy of `re`, used with `lead`. */
  sticky?: RegExp;
  /**
   * The last element of the rule, which every match contains starting at a word start after the
   * match start: its literal word starts (`keys`) and a sticky regex for it. Used with `lead`:
   * candidates at or after the last place where the tail matches are not tried. `direct`: lead
   * keys of alternatives without that element, which match only at their own positions (so
   * candidates after the last of those are not tried either).
   */
  tail?: { keys: string[]; re: RegExp; direct?: string[] };
}

const alt = (words: string[]) => `(?:${words.join('|')})`;
/** Up to `n` intervening words (bounded: linear per start position). */
const gap = (n: number) => `(?:[^\\w\\n]{1,6}[\\w']{1,24}){0,${n}}[^\\w\\n]{1,6}`;
const b = '\\b';

interface Family {
  lang: string;
  /** Override verbs ("ignore", "forget" …). */
  overrideVerbs: string[];
  /** Words meaning previous/above/all/system. */
  prior: string[];
  /** Nouns meaning instructions/rules/prompt. */
  instructions: string[];
  /** Extraction verbs ("reveal", "repeat" …). */
  revealVerbs: string[];
  /** Phrases naming the system prompt. */
  systemPrompt: string[];
  /** "Without restrictions/filters …". */
  unrestricted: string[];
  /** "You are now / act as / pretend to be …". */
  becomeRole: string[];
  /** "Never refuse / no warnings …". */
  noRefusal: string[];
  /** "From now on / new instructions …". */
  newRegime: string[];
}

const FAMILIES: Family[] = [
  {
    lang: 'en',
    overrideVerbs: ['ignore', 'ignoring', 'disregard', 'disregarding', 'forget', 'forgetting', 'bypass', 'override', 'overrule', 'overlook', 'neglect', 'dismiss', 'abandon', 'discard', 'skip', 'drop', 'set aside', 'do not follow', "don't follow", 'dont follow', 'stop following', 'no longer follow', 'pay no attention to', 'throw out', 'erase', 'delete', 'clear', 'cancel', 'reset'],
    prior: ['previous', 'prior', 'above', 'earlier', 'preceding', 'former', 'initial', 'original', 'old', 'all', 'any', 'every', 'your', 'these', 'those', 'the system', 'system', 'developer', 'default', 'existing', 'foregoing', 'aforementioned', 'other', 'given', 'current'],
    instructions: ['instructions?', 'prompts?', 'directions?', 'directives?', 'rules', 'guidelines', 'commands?', 'orders', 'constraints', 'restrictions', 'programming', 'guidance', 'polic(?:y|ies)', 'safeguards', 'filters', 'limitations', 'training', 'context', 'conversation', 'messages?', 'tasks?', 'assignments?', 'settings'],
    revealVerbs: ['reveal', 'show', 'print', 'repeat', 'output', 'display', 'tell me', 'give me', 'share', 'leak', 'dump', 'write (?:out|down)', 'spell out', 'recite', 'list', 'disclose', 'expose', 'provide', 'return', 'echo', 'copy', 'paste', 'what (?:is|are|was|were)', 'summari[sz]e', 'translate', 'type out', 'read (?:back|out)', 'quote', 'verbatim'],
    systemPrompt: ['system prompt', 'system message', 'system instructions?', 'initial (?:prompt|instructions?)', 'original (?:prompt|instructions?)', 'hidden (?:prompt|instructions?|rules)', 'secret (?:prompt|instructions?|rules|password|key)', 'internal (?:prompt|instructions?|rules)', 'developer (?:prompt|message|instructions?)', 'pre-?prompt', 'meta-?prompt', 'your (?:instructions|rules|guidelines|prompt|directives|configuration)', '(?:text|words|instructions|everything|content) (?:above|before) (?:this|here)', 'first (?:message|instructions?|lines?) (?:you (?:were|got)|of (?:this|the) conversation)', 'what (?:you were|were you) told'],
    unrestricted: ['(?:without|no|free (?:from|of)|beyond|not bound by|freed from|liberated from|unbound by|break(?:ing)? (?:free|out) (?:of|from))' + gap(2) + '(?:restrictions?|filters?|filtering|limits|limitations|censorship|guidelines|rules|boundaries|morals?|ethics|ethical (?:guidelines|constraints|principles)|moral (?:guidelines|constraints|principles)|constraints|safeguards|polic(?:y|ies))', 'unfiltered', 'uncensored', 'unrestricted', 'amoral', 'jailbroken', 'jailbreak', 'do anything now', 'developer mode', 'dan mode', 'god mode', 'evil (?:mode|confidant|ai|assistant|bot)', 'no (?:ethical|moral) (?:or (?:moral|ethical) )?(?:guidelines|principles|constraints|boundaries)'],
    becomeRole: ['you are (?:now|going to|about to)', "you're (?:now|going to)", 'you will (?:now )?(?:act|be|pretend|roleplay|simulate|respond)', 'act as', 'acting as', 'pretend (?:to be|you are|that you are)', 'roleplay as', 'role-?play (?:as|a)', 'simulate', 'impersonate', 'from now on,? you', 'assume the (?:role|persona|identity)', 'stay in character', 'become', 'transform into', 'switch to'],
    noRefusal: ['(?:never|do not|don\'t|dont|must not|mustn\'t|shall not|should not|will not|won\'t|cannot|can\'t|not allowed to|are not to|never ever)' + gap(1) + '(?:refuse|decline|deny|say no|reject|apologi[sz]e|say (?:sorry|that you (?:can\'t|cannot))|say i\'?m sorry|warn|add (?:a |any )?(?:warnings?|disclaimers?|notes?)|include (?:a |any )?(?:warnings?|disclaimers?|caveats?|notes?)|mention (?:that|ethics|legality|morality|the law|safety)|break character|moralize|lecture|censor)', '(?:without|no|omit(?:ting)?|skip(?:ping)?|remove) (?:any |all |the )?(?:warnings?|disclaimers?|moralizing|moralising|caveats|apologies|ethical (?:warnings|considerations)|safety warnings)', '(?:start|begin) (?:your |each |every )?(?:response|answer|reply|output)s? (?:with|by saying) [\'"`]?(?:sure|certainly|absolutely|of course|yes)', 'always (?:comply|answer|respond|obey|provide)', 'answer (?:any|every|all) (?:question|request)s?'],
    newRegime: ['from now on', 'new instructions?', 'updated instructions?', 'new task', 'new rules?', 'your new (?:task|goal|role|purpose|instructions?|objective)', 'instead,? (?:you (?:will|must|should)|do|say|print|output|write|respond)', 'real instructions?', 'actual instructions?', 'true instructions?', 'override (?:mode|code|command)', 'admin(?:istrator)? (?:mode|override|command|access)', 'sudo mode', 'maintenance mode', 'debug mode'],
  },
  {
    lang: 'fr',
    overrideVerbs: ['ignore[rz]?', 'ignorant', 'oublie[rz]?', 'neglige[rz]?', 'contourne[rz]?', 'ne tiens pas compte', 'ne tenez pas compte', 'fais abstraction', 'faites abstraction', 'ne suis pas', 'ne suivez pas', 'abandonne[rz]?', 'efface[rz]?', 'passe[rz]? outre'],
    prior: ['precedente?s?', 'anterieure?s?', 'ci-dessus', 'toutes', 'tous', 'tes', 'vos', 'initiale?s?', 'originale?s?', 'du systeme', 'systeme'],
    instructions: ['instructions?', 'consignes?', 'regles?', 'directives?', 'ordres?', 'commandes?', 'restrictions?', 'prompts?', 'invites?', 'limites?'],
    revealVerbs: ['montre[rz]?', 'affiche[rz]?', 'revele[rz]?', 'repete[rz]?', 'donne[rz]?(?:-moi)?', 'dis(?:-moi)?', 'ecris', 'ecrivez', 'imprime[rz]?', 'quel(?:le)?s? (?:est|sont|etaient)', 'partage[rz]?', 'divulgue[rz]?', 'recopie[rz]?'],
    systemPrompt: ['prompt (?:du )?systeme', 'invite (?:du )?systeme', 'instructions? (?:du )?systeme', 'consignes? (?:du )?systeme', 'instructions? (?:initiales|cachees|secretes|originales)', 'consignes? (?:initiales|cachees|secretes)', 'message systeme', 'tes (?:instructions|consignes|regles)', 'vos (?:instructions|consignes|regles)'],
    unrestricted: ['sans (?:aucune?s? |la moindre |)(?:restrictions?|limites?|filtres?|censure|regles?|contraintes?|limitations?|morale|ethique)', 'non (?:censure|filtre|restreint)', 'mode developpeur'],
    becomeRole: ['tu es (?:maintenant|desormais|a present)', 'vous etes (?:maintenant|desormais)', 'agis (?:comme|en tant que)', 'agissez (?:comme|en tant que)', 'fais semblant', 'faites semblant', 'joue le role', 'incarne', 'fais comme si', 'a partir de maintenant,? tu', 'deviens'],
    noRefusal: ['ne (?:refuse|refusez|decline) (?:jamais|pas)', 'ne (?:dis|dites) (?:jamais|pas) (?:non|que tu ne peux pas)', 'sans (?:aucun )?(?:avertissements?|mises? en garde|excuses)', 'ne t\'excuse (?:jamais|pas)', 'reponds? toujours', 'commence (?:ta|chaque) reponse par [\'"]?(?:bien sur|oui|certainement)'],
    newRegime: ['a partir de maintenant', 'desormais', 'nouvelles? (?:instructions?|consignes?|regles?|taches?)', 'tes nouvelles (?:instructions|consignes)', 'ta nouvelle (?:tache|mission)', 'au lieu de cela'],
  },
  {
    lang: 'de',
    overrideVerbs: ['ignorier(?:e|en|t)?', 'vergiss', 'vergessen sie', 'missachte(?:n)?', 'umgehe(?:n)?', 'uberschreibe(?:n)?', 'verwirf', 'verwerfen sie', 'befolge (?:nicht|keine)', 'befolgen sie (?:nicht|keine)', 'halte dich nicht an', 'setze (?:alle )?\\w* ?au(?:ss|ß)er kraft', 'losche'],
    prior: ['vorherigen?', 'vorigen?', 'bisherigen?', 'obigen?', 'fruheren?', 'alle', 'alles', 'deine', 'ihre', 'ursprunglichen?', 'vorangegangenen?', 'oben genannten?', 'system'],
    instructions: ['anweisung(?:en)?', 'instruktion(?:en)?', 'regeln', 'befehle?', 'vorgaben', 'richtlinien', 'anordnungen', 'einschrankungen', 'prompts?', 'auftrage?'],
    revealVerbs: ['zeig(?:e|en sie)?', 'gib', 'geben sie', 'verrate(?:n sie)?', 'wiederhole(?:n sie)?', 'nenne(?:n sie)?', 'schreib(?:e|en sie)?', 'drucke', 'gib (?:mir )?aus', 'was (?:ist|sind|war|waren)', 'teile', 'offenbare', 'kopiere'],
    systemPrompt: ['system-?prompt', 'system-?anweisung(?:en)?', 'system-?nachricht', 'anfangliche(?:n)? anweisung(?:en)?', 'ursprungliche(?:n)? anweisung(?:en)?', 'versteckte(?:n)? (?:anweisung(?:en)?|regeln)', 'geheime(?:n)? (?:anweisung(?:en)?|regeln)', 'deine (?:anweisungen|regeln|vorgaben|instruktionen)', 'ihre (?:anweisungen|regeln)'],
    unrestricted: ['ohne (?:jegliche |irgendwelche |alle |)(?:einschrankungen|beschrankungen|regeln|filter|zensur|grenzen|limits|moral|ethik|richtlinien)', 'unzensiert(?:e|er)?', 'ungefiltert(?:e|er)?', 'entwicklermodus'],
    becomeRole: ['du bist (?:jetzt|nun|ab jetzt|ab sofort)', 'sie sind (?:jetzt|nun)', 'tu so,? als', 'tun sie so,? als', 'handle als', 'agiere als', 'verhalte dich (?:wie|als)', 'spiel(?:e)? die rolle', 'schlupfe in die rolle', 'ab (?:jetzt|sofort),? (?:bist|wirst) du', 'werde zu'],
    noRefusal: ['(?:lehne|verweigere) (?:niemals|nie|nichts)', 'nie(?:mals)? ablehnen', 'ohne (?:jegliche )?(?:warnungen|warnhinweise|hinweise|entschuldigungen|disclaimer)', 'keine (?:warnungen|warnhinweise|entschuldigungen|disclaimer)', 'antworte immer', 'beginne (?:deine|jede) antwort mit [\'"]?(?:sicher|naturlich|klar|ja)'],
    newRegime: ['ab (?:jetzt|sofort)', 'von nun an', 'neue (?:anweisungen|anweisung|regeln|aufgabe|instruktionen)', 'deine neue (?:aufgabe|rolle)', 'stattdessen'],
  },
  {
    lang: 'es',
    overrideVerbs: ['ignora(?:r|d)?', 'ignore(?:n)?', 'olvida(?:r)?', 'olvide(?:n)?', 'omite', 'omita', 'descarta', 'haz caso omiso', 'no hagas caso', 'no sigas', 'no siga', 'salta(?:te)?', 'anula', 'desobedece', 'pasa por alto', 'borra'],
    prior: ['anteriores', 'previas?', 'previos?', 'todas', 'todos', 'tus', 'sus', 'iniciales', 'originales', 'de arriba', 'del sistema', 'precedentes'],
    instructions: ['instrucciones', 'instruccion', 'reglas', 'indicaciones', 'directrices', 'ordenes', 'comandos', 'restricciones', 'normas', 'prompts?', 'pautas'],
    revealVerbs: ['muestra(?:me)?', 'muestre', 'revela(?:me)?', 'revele', 'repite', 'repita', 'dime', 'digame', 'dame', 'deme', 'imprime', 'escribe', 'cual(?:es)? (?:es|son|era|eran)', 'comparte', 'copia'],
    systemPrompt: ['prompt del sistema', 'indicaciones del sistema', 'instrucciones (?:del sistema|iniciales|ocultas|secretas|originales)', 'mensaje del sistema', 'tus (?:instrucciones|reglas|directrices)', 'sus (?:instrucciones|reglas)'],
    unrestricted: ['sin (?:ninguna |ningun |)(?:restricciones|restriccion|limites|filtros|censura|reglas|limitaciones|moral|etica)', 'sin censura', 'sin filtros', 'modo desarrollador'],
    becomeRole: ['ahora eres', 'ahora seras', 'a partir de ahora,? (?:eres|seras)', 'actua como', 'actue como', 'finge (?:ser|que eres)', 'finja (?:ser|que es)', 'haz de', 'interpreta (?:el papel|a)', 'juega el papel', 'conviertete en', 'asume el (?:papel|rol)'],
    noRefusal: ['nunca (?:te niegues|rechaces|digas que no|te disculpes|rehuses)', 'no (?:te niegues|rechaces) (?:nunca|jamas)', 'sin (?:ninguna )?(?:advertencias?|avisos?|disculpas|descargos)', 'responde siempre', 'siempre responde', 'empieza (?:tu|cada) respuesta con [\'"]?(?:claro|por supuesto|si)'],
    newRegime: ['a partir de ahora', 'de ahora en adelante', 'nuevas? (?:instrucciones|reglas|tarea|ordenes)', 'tu nueva (?:tarea|mision)', 'en su lugar', 'en cambio'],
  },
  {
    lang: 'it',
    overrideVerbs: ['ignora(?:re|te)?', 'dimentica(?:re|te)?', 'trascura(?:re)?', 'tralascia', 'non seguire', 'non tenere conto', 'salta', 'annulla', 'scarta', 'aggira', 'bypassa', 'cancella'],
    prior: ['precedenti', 'tutte', 'tutti', 'le tue', 'tue', 'sue', 'iniziali', 'originali', 'sopra', 'di sistema', 'del sistema', 'anteriori'],
    instructions: ['istruzion[ei]', 'regole', 'indicazioni', 'direttive', 'ordini', 'comandi', 'restrizioni', 'prompts?', 'linee guida', 'limitazioni'],
    revealVerbs: ['mostra(?:mi)?', 'rivela(?:mi)?', 'ripeti', 'dimmi', 'dammi', 'stampa', 'scrivi', 'qual[ei]? (?:e|sono|era|erano)', 'condividi', 'copia', 'elenca'],
    systemPrompt: ['prompt di sistema', 'prompt del sistema', 'istruzioni (?:di sistema|del sistema|iniziali|nascoste|segrete|originali)', 'messaggio di sistema', 'le tue (?:istruzioni|regole)'],
    unrestricted: ['senza (?:alcuna |alcun |nessuna |)(?:restrizion[ei]|limit[ei]|filtr[oi]|censura|regole|limitazion[ei]|morale|etica)', 'non censurat[oa]', 'modalita sviluppatore'],
    becomeRole: ['ora sei', 'adesso sei', 'da ora in poi,? (?:sei|sarai)', 'comportati come', 'agisci come', 'fingi (?:di essere|che)', 'fai finta di essere', 'interpreta (?:il ruolo|la parte)', 'impersona', 'diventa', 'assumi il ruolo'],
    noRefusal: ['non rifiutare mai', 'mai rifiutare', 'non (?:dire|rispondere) mai (?:di )?no', 'senza (?:alcun )?(?:avvertiment[oi]|avvertenze|avvisi|scuse)', 'rispondi sempre', 'inizia (?:la tua|ogni) risposta con [\'"]?(?:certo|sicuro|si)'],
    newRegime: ['da ora in poi', 'd\'ora in poi', 'a partire da ora', 'nuove (?:istruzioni|regole)', 'nuovo compito', 'il tuo nuovo (?:compito|ruolo)', 'invece'],
  },
  {
    lang: 'pt',
    overrideVerbs: ['ignor[ae](?:r|m)?', 'esque[cç]a(?:m)?', 'esquecer', 'desconsidere(?:m)?', 'desconsiderar', 'despreze', 'nao sig[ae]', 'pule', 'descarte', 'anule', 'contorne', 'apague', 'deixe de lado'],
    prior: ['anteriores', 'previas?', 'todas', 'todos', 'suas', 'tuas', 'iniciais', 'originais', 'acima', 'do sistema', 'precedentes'],
    instructions: ['instrucoes', 'instrucao', 'regras', 'orientacoes', 'diretrizes', 'ordens', 'comandos', 'restricoes', 'prompts?', 'normas'],
    revealVerbs: ['mostre(?:-me)?', 'mostra', 'revele', 'revela', 'repita', 'repete', 'diga(?:-me)?', 'me diga', 'me de', 'de-me', 'imprima', 'escreva', 'qua(?:l|is) (?:e|sao|era|eram)', 'compartilhe', 'copie'],
    systemPrompt: ['prompt do sistema', 'instrucoes (?:do sistema|iniciais|ocultas|secretas|originais)', 'mensagem do sistema', 'suas (?:instrucoes|regras|diretrizes)', 'tuas (?:instrucoes|regras)'],
    unrestricted: ['sem (?:nenhuma |qualquer |)(?:restricoes|restricao|limites|filtros|censura|regras|limitacoes|moral|etica)', 'sem censura', 'modo desenvolvedor'],
    becomeRole: ['agora voce e', 'agora tu es', 'a partir de agora,? voce (?:e|sera)', 'aja como', 'atue como', 'finja (?:ser|que e)', 'faca de conta', 'interprete o papel', 'assuma o papel', 'torne-se', 'comporte-se como'],
    noRefusal: ['nunca (?:recuse|se recuse|diga nao|rejeite|peca desculpas)', 'nao recuse nunca', 'sem (?:nenhum )?(?:avisos?|advertencias?|desculpas|ressalvas)', 'responda sempre', 'sempre responda', 'comece (?:sua|cada) resposta com [\'"]?(?:claro|com certeza|sim)'],
    newRegime: ['a partir de agora', 'de agora em diante', 'novas? (?:instrucoes|regras|tarefa)', 'sua nova (?:tarefa|missao)', 'em vez disso'],
  },
  {
    lang: 'nl',
    overrideVerbs: ['negeer', 'negeren', 'vergeet', 'vergeten', 'omzeil', 'sla (?:\\w+ )?over', 'volg (?:\\w+ )?niet', 'laat (?:\\w+ )?varen', 'schrap', 'verwerp', 'wis'],
    prior: ['vorige', 'voorgaande', 'eerdere', 'bovenstaande', 'alle', 'je', 'jouw', 'uw', 'oorspronkelijke', 'originele', 'systeem'],
    instructions: ['instructies', 'instructie', 'regels', 'opdrachten', 'opdracht', 'richtlijnen', 'aanwijzingen', 'bevelen', 'beperkingen', 'prompts?'],
    revealVerbs: ['toon', 'laat (?:me )?zien', 'onthul', 'herhaal', 'geef', 'vertel', 'print', 'schrijf', 'wat (?:is|zijn|was|waren)', 'deel', 'kopieer'],
    systemPrompt: ['systeem-?prompt', 'systeem-?instructies', 'systeem-?bericht', '(?:oorspronkelijke|originele|verborgen|geheime|initiele) (?:instructies|regels|prompt)', '(?:je|jouw|uw) (?:instructies|regels|richtlijnen)'],
    unrestricted: ['zonder (?:enige |alle |)(?:beperkingen|regels|filters|censuur|grenzen|moraal|ethiek|restricties)', 'ongecensureerd', 'ongefilterd', 'ontwikkelaarsmodus'],
    becomeRole: ['je bent nu', 'jij bent nu', 'u bent nu', 'vanaf nu ben je', 'doe alsof', 'gedraag je als', 'speel de rol', 'handel als', 'treed op als', 'word'],
    noRefusal: ['weiger nooit', 'nooit weigeren', 'zeg nooit nee', 'zonder (?:enige )?(?:waarschuwingen|disclaimers|excuses)', 'geen (?:waarschuwingen|disclaimers)', 'antwoord altijd', 'begin (?:je|elk) antwoord met [\'"]?(?:zeker|natuurlijk|ja)'],
    newRegime: ['vanaf nu', 'van nu af aan', 'nieuwe (?:instructies|regels|opdracht|taak)', 'je nieuwe (?:taak|opdracht|rol)', 'in plaats daarvan'],
  },
  {
    lang: 'pl',
    overrideVerbs: ['zignoruj(?:cie)?', 'ignoruj(?:cie)?', 'zapomnij(?:cie)?', 'pomin(?:cie)?', 'nie (?:stosuj|przestrzegaj|sluchaj|wykonuj)', 'odrzuc', 'obejdz', 'porzuc', 'usun', 'anuluj', 'lekcewaz'],
    prior: ['poprzednie', 'poprzednich', 'wczesniejsze', 'wczesniejszych', 'wszystkie', 'wszystkich', 'twoje', 'twoich', 'powyzsze', 'powyzszych', 'pierwotne', 'oryginalne', 'systemowe'],
    instructions: ['instrukcj[eia]', 'instrukcjach', 'polecenia?', 'poleceniach', 'zasady', 'zasadach', 'reguly', 'regul', 'wytyczne', 'wytycznych', 'ograniczenia', 'rozkazy', 'prompty?'],
    revealVerbs: ['pokaz', 'ujawnij', 'powtorz', 'podaj', 'wypisz', 'napisz', 'wydrukuj', 'powiedz', 'jak(?:i|a|ie) (?:jest|sa|byl|byla|byly)', 'udostepnij', 'skopiuj', 'zdradz'],
    systemPrompt: ['prompt (?:systemowy|systemu)', 'instrukcj[ea] systemow[ea]', 'komunikat systemowy', 'wiadomosc systemowa', '(?:ukryte|tajne|poczatkowe|oryginalne|pierwotne) (?:instrukcje|polecenia|zasady)', 'twoje (?:instrukcje|zasady|polecenia|wytyczne)'],
    unrestricted: ['bez (?:zadnych |jakichkolwiek |)(?:ograniczen|zasad|filtrow|cenzury|regul|granic|moralnosci|etyki)', 'bez cenzury', 'nieocenzurowan[ya]', 'tryb (?:dewelopera|programisty)'],
    becomeRole: ['jestes teraz', 'teraz jestes', 'od teraz jestes', 'udawaj', 'zachowuj sie jak', 'dzialaj jako', 'wciel sie', 'odgrywaj role', 'zagraj role', 'stan sie'],
    noRefusal: ['nigdy nie odmawiaj', 'nie odmawiaj', 'nigdy nie mow nie', 'bez (?:zadnych )?(?:ostrzezen|zastrzezen|przeprosin)', 'zawsze odpowiadaj', 'zacznij (?:swoja|kazda) odpowiedz od [\'"]?(?:oczywiscie|jasne|tak)'],
    newRegime: ['od teraz', 'od tej chwili', 'nowe (?:instrukcje|polecenia|zasady|zadanie)', 'twoje nowe (?:zadanie|polecenie)', 'zamiast tego'],
  },
  {
    lang: 'tr',
    overrideVerbs: ['yok say', 'yoksay', 'gormezden gel', 'unut', 'dikkate alma', 'uyma', 'atla', 'boşver', 'bosver', 'iptal et', 'gecersiz say', 'cigne', 'sil'],
    prior: ['onceki', 'yukaridaki', 'tum', 'butun', 'senin', 'onceden verilen', 'ilk', 'orijinal', 'sistem', 'eski', 'verilen'],
    instructions: ['talimat(?:lari|lar|i|larini)?', 'kurallar(?:i|ini)?', 'komut(?:lari|lar|u)?', 'yonerge(?:leri|ler)?', 'direktif(?:leri|ler)?', 'emir(?:leri|ler)?', 'kisitlama(?:lari|lar)?', 'istem(?:leri|ler)?', 'prompt(?:lari|u)?'],
    revealVerbs: ['goster', 'acikla', 'tekrarla', 'yaz', 'soyle', 'ver', 'yazdir', 'paylas', 'ifsa et', 'kopyala', 'nedir', 'neydi'],
    systemPrompt: ['sistem (?:istemi|istemini|komutu|komutunu|promptu|promptunu|talimatlari|talimatlarini|mesaji|mesajini)', '(?:gizli|ilk|orijinal|baslangic) (?:talimatlar(?:i|ini)?|kurallar(?:i|ini)?|istem(?:i|ini)?)', 'talimatlarini', 'kurallarini'],
    unrestricted: ['(?:hicbir )?(?:kisitlama|sinir|filtre|kural|sansur|etik|ahlak)(?:lar)? olmadan', 'kisitlamasiz', 'sansursuz', 'filtresiz', 'sinirsiz', 'gelistirici modu'],
    becomeRole: ['artik sen', 'sen artik', 'bundan sonra sen', 'gibi davran', 'rol(?:unu)? yap', 'rolune gir', 'taklit et', 'gibi hareket et', '(?:mis|miş) gibi yap'],
    noRefusal: ['asla reddetme', 'reddetme', 'hayir deme', 'uyari(?:lar)? (?:olmadan|verme)', 'ozur dileme', 'her zaman (?:cevap ver|yanitla)', '(?:cevabina|yanitina) [\'"]?(?:tabii|elbette|evet) (?:ile|diye) basla'],
    newRegime: ['bundan sonra', 'bundan boyle', 'artik', 'yeni (?:talimatlar|kurallar|gorev|gorevin)', 'yeni gorevin', 'onun yerine'],
  },
];

function compile(src: string): RegExp {
  return new RegExp(src, 'g');
}

/** Leading literal word prefixes of a list of alternatives, or null when one has no literal start. */
function literalStarts(alternatives: string[]): string[] | null {
  const out: string[] = [];
  for (const a of alternatives) {
    const starts = literalStartOf(a);
    if (starts === null) return null;
    out.push(...starts);
  }
  return [...new Set(out)];
}

function literalStartOf(a: string): string[] | null {
  if (a.startsWith('(?:')) {
    // Split the top-level alternatives of the leading group.
    let depth = 0;
    let i = 3;
    let cur = '';
    const parts: string[] = [];
    for (; i < a.length; i++) {
      const c = a[i];
      if (c === '\\') {
        cur += c + a[i + 1];
        i++;
        continue;
      }
      if (c === '(') depth++;
      if (c === ')') {
        if (depth === 0) break;
        depth--;
      }
      if (c === '|' && depth === 0) {
        parts.push(cur);
        cur = '';
        continue;
      }
      cur += c;
    }
    parts.push(cur);
    // An optional group ("(?:…)?") has no required start.
    if (a[i + 1] === '?' || a[i + 1] === '*') return null;
    return literalStarts(parts);
  }
  const m = /^[a-z0-9']+/.exec(a);
  if (!m) return null;
  let lit = m[0];
  const next = a[lit.length];
  // A complete word followed by a space: match the whole word. At the end of the alternative
  // the text may continue the word (no trailing \b in every rule), so use a prefix there.
  if (next === ' ') return [`w:${lit}`];
  // A following quantifier makes the last character optional.
  if (next === '?' || next === '*' || next === '{') lit = lit.slice(0, -1);
  if (lit.length < 2) return null;
  return [`p:${lit.slice(0, 6)}`];
}

/**
 * Like `literalStarts`, but an alternative that opens with an optional group (`(?:hicbir )?…`)
 * starts where that group or the element after it starts.
 */
function optionalLiteralStarts(alternatives: string[]): string[] | null {
  const out: string[] = [];
  for (const a of alternatives) {
    let starts = literalStartOf(a);
    if (starts === null && a.startsWith('(?:')) {
      const close = matchingParen(a, 0);
      if (close > 0 && a[close + 1] === '?' && a[close + 2] !== '?') {
        const inside = literalStarts(topLevelAlternatives(a.slice(3, close)));
        const after = literalStartOf(a.slice(close + 2));
        starts = inside !== null && after !== null ? [...inside, ...after] : null;
      }
    }
    if (starts === null) return null;
    out.push(...starts);
  }
  return [...new Set(out)];
}

/**
 * Substring needles for a list of alternatives whose start is not a literal word (e.g.
 * `a partir de maintenant`): the first literal run of 4+ letters of each alternative, or null
 * when one alternative has none.
 */
function literalNeedles(alternatives: string[]): string[] | null {
  const out: string[] = [];
  for (const a of alternatives) {
    // Keep only what every match must contain: drop groups, classes and optional characters.
    let t = a;
    for (let prev = ''; prev !== t; ) {
      prev = t;
      t = t.replace(/\([^()]*\)(?:[?*+]|\{\d+,?\d*\})?/g, ' ');
    }
    t = t.replace(/\[[^\]]*\](?:[?*+]|\{\d+,?\d*\})?/g, ' ').replace(/\\.|.[?*]|[?*+{}\d,]/g, ' ');
    const m = /[a-z']{4,}/.exec(t);
    if (!m) return null;
    out.push(`s:${m[0]}`);
  }
  return [...new Set(out)];
}

function groups(...lists: string[][]): string[][] | undefined {
  const out: string[][] = [];
  for (const l of lists) {
    const starts = literalStarts(l) ?? literalNeedles(l);
    if (starts !== null) out.push(starts);
  }
  return out.length > 0 ? out : undefined;
}

function familyRules(f: Family): Rule[] {
  const V = alt(f.overrideVerbs);
  const P = alt(f.prior);
  const I = alt(f.instructions);
  const R = alt(f.revealVerbs);
  const S = alt(f.systemPrompt);
  const U = alt(f.unrestricted);
  const B = alt(f.becomeRole);
  const N = alt(f.noRefusal);
  const G = alt(f.newRegime);
  const rules: Rule[] = [
    // verb … prior … instructions   ("ignore all previous instructions")
    { id: `override.verb-prior-noun.${f.lang}`, category: 'instruction_override', lang: f.lang, score: 0.9, re: compile(`${b}${V}${gap(3)}${P}${gap(2)}${I}${b}`), anchors: groups(f.overrideVerbs, f.instructions) },
    // noun … prior … verb (SOV / passive: "previous instructions … ignore", Turkish order)
    { id: `override.noun-verb.${f.lang}`, category: 'instruction_override', lang: f.lang, score: 0.8, re: compile(`${b}${P}${gap(1)}${I}${gap(3)}${V}${b}`), anchors: groups(f.overrideVerbs, f.instructions) },
    // verb + instructions without a qualifier ("ignore instructions") – weaker
    { id: `override.verb-noun.${f.lang}`, category: 'instruction_override', lang: f.lang, score: 0.55, re: compile(`${b}${V}${gap(1)}${I}${b}`), anchors: groups(f.overrideVerbs, f.instructions) },
    { id: `override.new-regime.${f.lang}`, category: 'instruction_override', lang: f.lang, score: 0.35, re: compile(`${b}${G}${b}`), anchors: groups(f.newRegime) },
    { id: `extraction.reveal-system.${f.lang}`, category: 'prompt_extraction', lang: f.lang, score: 0.85, re: compile(`${b}${R}${gap(4)}${S}`), anchors: groups(f.revealVerbs, f.systemPrompt) },
    { id: `extraction.system-reveal.${f.lang}`, category: 'prompt_extraction', lang: f.lang, score: 0.7, re: compile(`${b}${S}${gap(3)}${R}${b}`), anchors: groups(f.revealVerbs, f.systemPrompt) },
    { id: `extraction.mention.${f.lang}`, category: 'prompt_extraction', lang: f.lang, score: 0.3, re: compile(`${b}${S}`), anchors: groups(f.systemPrompt) },
    { id: `persona.unrestricted.${f.lang}`, category: 'persona_hijack', lang: f.lang, score: 0.6, re: compile(`${b}${U}${b}`), anchors: groups(f.unrestricted) },
    { id: `persona.become-unrestricted.${f.lang}`, category: 'persona_hijack', lang: f.lang, score: 0.9, re: compile(`${b}${B}${gap(12)}${U}`), anchors: groups(f.becomeRole, f.unrestricted) },
    { id: `persona.become.${f.lang}`, category: 'persona_hijack', lang: f.lang, score: 0.25, re: compile(`${b}${B}${b}`), anchors: groups(f.becomeRole) },
    { id: `refusal.${f.lang}`, category: 'refusal_suppression', lang: f.lang, score: 0.6, re: compile(`${b}${N}`), anchors: groups(f.noRefusal) },
  ];
  // The first element of each rule above, in order: matches can only start where it starts.
  const firsts = [f.overrideVerbs, f.prior, f.overrideVerbs, f.newRegime, f.revealVerbs, f.systemPrompt, f.systemPrompt, f.unrestricted, f.becomeRole, f.becomeRole, f.noRefusal];
  // The last element of the rules made of several elements (joined by a gap, so it starts a word).
  const lasts = [f.instructions, f.overrideVerbs, f.instructions, null, f.systemPrompt, f.revealVerbs, null, null, f.unrestricted, null, null];
  rules.forEach((r, i) => {
    const lead = literalStarts(firsts[i]) ?? optionalLiteralStarts(firsts[i]);
    if (lead !== null) {
      r.lead = lead;
      r.sticky = new RegExp(r.re.source, 'y');
      const last = lasts[i];
      const keys = last ? literalStarts(last) : null;
      if (last && keys !== null) r.tail = { keys, re: new RegExp(alt(last), 'y') };
    }
  });
  return rules;
}

const LANGUAGE_NEUTRAL: Rule[] = [
  // Chat-template tokens of popular model families.
  { id: 'fake-turn.template-token', category: 'fake_turn', lang: 'any', score: 0.9, needles: ['<|', '[inst', '[/inst', '<<sys', '<</sys', '[sys', '[system', '_of_turn>'], re: /<\|(?:im_start|im_end|im_sep|system|user|assistant|endoftext|begin_of_text|end_of_text|start_header_id|end_header_id|eot_id|eom_id|channel|message|end|start|turn>?)\|>|<\/?(?:start_of_turn|end_of_turn)>|\[\/?inst\]|<<\/?sys>>|\[\/?(?:system|sys)(?:_prompt)?\]|<\/?s>\s*\[inst\]/g },
  // "### System:" / "### Instruction:" headers and role lines at the start of a line.
  { id: 'fake-turn.role-header', category: 'fake_turn', lang: 'any', score: 0.55, needles: [':'], re: /(?:^|\n)[ \t]*(?:#{1,4}[ \t]*|\*\*|\[)?(?:system|assistant|developer|admin|instruction|instructions|new instructions|human|ai|gpt|chatgpt|user)[ \t]*(?:\*\*|\])?[ \t]*(?:message|prompt|override|note|update)?[ \t]*:/g },
  { id: 'fake-turn.system-tag', category: 'fake_turn', lang: 'any', score: 0.7, needles: ['<'], re: /<\/?(?:system|system_prompt|sys|instructions?|admin|developer|assistant|im_start)(?:\s[^<>\n]{0,80})?>/g },
  { id: 'fake-turn.json-role', category: 'fake_turn', lang: 'any', score: 0.6, needles: ['role'], re: /["']role["']\s*:\s*["'](?:system|developer|assistant|tool)["']/g },
  // Delimiter/format injection: closing the data block and opening new instructions.
  { id: 'delimiter.end-of-data', category: 'delimiter_injection', lang: 'any', score: 0.5, needles: [' of '], re: /\b(?:end|close|closing) of (?:the )?(?:document|context|input|text|email|data|file|user input|conversation|prompt|article|page|content|search results?|tool output)\b/g },
  { id: 'delimiter.closing-tag', category: 'delimiter_injection', lang: 'any', score: 0.55, needles: ['</'], re: /<\/(?:document|context|data|input|user_input|untrusted|text|article|email|content|tool_output|search_results?|retrieved)>/g },
  { id: 'delimiter.begin-instructions', category: 'delimiter_injection', lang: 'any', score: 0.75, needles: ['begin', 'start'], re: /\b(?:begin|start|beginning) (?:of )?(?:the )?(?:new|real|actual|true|hidden|secret|updated|important) (?:instructions?|prompt|task|rules)\b/g },
  { id: 'delimiter.fence-break', category: 'delimiter_injection', lang: 'any', score: 0.6, needles: ['---', '===', '***', '###', '```'], re: /(?:^|\n)[ \t]*(?:-{3,}|={3,}|\*{3,}|#{3,}|`{3,})[ \t]*(?:end|stop|new|system|ignore|admin|important|attention|instructions?)\b/g },
  // Payload splitting: variables assigned and then concatenated/executed.
  // A sum of three identifiers is ordinary code ("col+x_len+y_len"): weak evidence on its own.
  { id: 'splitting.sum', category: 'payload_splitting', lang: 'any', score: 0.35, needles: ['+'], re: /\b(?:[a-z]\w{0,8}\s*\+\s*){2,}[a-z]\w{0,8}\b/g },
  { id: 'splitting.concat', category: 'payload_splitting', lang: 'any', score: 0.7, needles: ['+', 'concat', 'combin', 'join', 'merge', 'together', 'append'], re: /\b(?:concatenate|combine|join|merge|put together|append)\b(?:[^\w\n]{1,6}\w{1,24}){0,6}[^\w\n]{1,6}(?:strings?|variables?|parts|pieces|fragments|segments|letters|words|a and b|x and y|[a-z] ?\+ ?[a-z])\b/g },
  { id: 'splitting.assign', category: 'payload_splitting', lang: 'any', score: 0.35, needles: ['='], re: /\b[a-z]\w{0,3}\s*=\s*["'][^"'\n]{1,80}["']/g },
  { id: 'splitting.parts', category: 'payload_splitting', lang: 'any', score: 0.5, needles: [' of '], re: /\b(?:first|second|third|next|last|final) (?:part|half|piece|fragment|segment) of (?:the |my |this )?(?:instruction|question|prompt|request|command|message|word)s?\b/g },
  // Indirect instructions aimed at the model reading a document or tool output.
  { id: 'indirect.your-output', category: 'indirect_instruction', lang: 'en', score: 0.55, needles: ['your ', 'the '], re: /\b(?:add|include|insert|append|prepend|mention|write|put|use|incorporate|embed|integrate|utili[sz]e|inject|place|end|start|begin|format|translate|encrypt|encode|respond|reply|answer|replace|rewrite)\b(?:[^\w\n]{1,6}[\w']{1,24}){0,10}[^\w\n]{1,6}(?:in|into|to|within|at the (?:end|start|beginning) of|throughout) (?:your|the) (?:response|answer|reply|output|summary|code|solution|message|result)s?\b/g },
  { id: 'indirect.your-response', category: 'indirect_instruction', lang: 'en', score: 0.5, needles: ['your '], re: /\b(?:your|the assistant's|the ai's|the model's) (?:response|answer|reply|output|summary|completion)s?\b(?:[^\w\n]{1,6}[\w']{1,24}){0,3}[^\w\n]{0,6}\b(?:in|into|as|with|using|by|to|should|must|so that|such that)\b|\b(?:modify|change|alter|rewrite|format|encode|encrypt|translate|reverse|write|provide|give|deliver|present|end|start|begin|conclude|finish|prefix|suffix|append|mention|add|include)\b(?:[^\w\n]{1,6}[\w']{1,24}){0,2}[^\w\n]{1,6}your (?:response|answer|reply|output|summary)s?\b/g },
  { id: 'indirect.your-code', category: 'indirect_instruction', lang: 'en', score: 0.5, needles: ['your ', 'code '], re: /\b(?:your (?:code|solution|response|answer|reply) (?:should|must|needs to|has to)|(?:following|below|this) code (?:snippet|excerpt|section|segment|block|fragment)\b(?:[^\w\n]{1,6}[\w']{1,24}){0,4}[^\w\n]{1,6}(?:your|in))/g },
  { id: 'indirect.address-ai', category: 'indirect_instruction', lang: 'en', score: 0.65, needles: ['ai', 'assistant', 'llm', 'model', 'agent', 'bot', 'gpt', 'claude', 'gemini', 'copilot', 'bing'], re: /\b(?:if you are an? (?:ai|llm|language model|assistant|bot|chatbot|agent)|note to (?:the )?(?:ai|assistant|llm|model|agent|bot)|(?:ai|llm|language model|assistant|agent|bot)s? (?:reading|processing|summari[sz]ing|analy[sz]ing) this|(?:dear|attention|hey|hi|hello) (?:ai|assistant|llm|chatgpt|gpt|claude|gemini|copilot|bing|agent|model)\b)/g },
  { id: 'indirect.exfil-action', category: 'indirect_instruction', lang: 'en', score: 0.6, needles: [' to '], re: /\b(?:send|forward|email|post|upload|transfer|exfiltrate|leak)\b(?:[^\w\n]{1,6}[\w']{1,24}){0,6}[^\w\n]{1,6}(?:to (?:this|the following|my) (?:address|url|email|server|endpoint|link)|to https?:\/\/|to [\w.+-]{1,40}@[\w-]{1,40}\.[a-z]{2,6})/g },
  // Markdown image exfiltration.
  { id: 'indirect.markdown-image', category: 'indirect_instruction', lang: 'any', score: 0.6, needles: ['](http'], re: /!\[[^\]\n]{0,80}\]\(https?:\/\/[^)\s]{1,200}(?:\?|&)[^)\s]{0,200}(?:\{|%7b|\$|data=|q=|prompt=|secret=|p=)[^)\s]{0,200}\)/g },
  // Classic named jailbreaks and modes.
  { id: 'persona.named', category: 'persona_hijack', lang: 'any', score: 0.85, re: /\b(?:dan (?:mode|prompt|jailbreak)|do anything now|stan\b(?:[^\w\n]{1,6}\w{1,24}){0,4}[^\w\n]{1,6}strive to avoid norms|dude\b(?:[^\w\n]{1,6}\w{1,24}){0,6}[^\w\n]{1,6}anything|aim stands for|always intelligent and machiavellian|developer mode (?:enabled|output|v2|2\.0)|jailbreak(?:ed|broken)? (?:mode|response|prompt|version)|anti-?dan|evil confidant|betterdan|chaosgpt|mongo tom|(?:\[|\()?(?:🔓|🔒)|\[(?:jailbreak|classic|dan|gpt|lucy)\]\s?:?)/g },
  // "Two answers" only as an instruction to answer twice ("respond … in two ways"), not "I see two answers".
  { id: 'persona.two-answers', category: 'persona_hijack', lang: 'en', score: 0.7, needles: ['two ', 'normal ', 'classic ', 'standard ', 'both'], re: /\b(?:(?:give|provide|generate|produce|write|output|create|say|respond|reply|answer|talk|responding|replying|answering)\b(?:[^\w\n]{1,6}[\w']{1,24}){0,6}[^\w\n]{1,6}two (?:(?:different |separate |distinct )?(?:responses|answers|ways)|(?:different|separate|distinct) paragraphs)|(?:normal|classic|standard) (?:response|answer) (?:and|then) (?:a |an )?(?:jailbroken|dan|unfiltered|uncensored|developer mode)|respond (?:as|like) both)\b/g },
];

/**
 * Walks the structure of a regex source from `from`: calls `visit` for every `(`, `)` and `|` that
 * is neither escaped nor inside a character class, with the group depth after it (relative to
 * `from`) and its index. Returns the index at which `visit` returned true, or -1.
 */
function walkSource(src: string, from: number, visit: (c: string, depth: number, at: number) => boolean): number {
  let depth = 0;
  let inClass = false;
  for (let i = from; i < src.length; i++) {
    const c = src[i]!;
    if (c === '\\') {
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
    } else if (c === '[') inClass = true;
    else if (c === '(' || c === ')' || c === '|') {
      if (c === '(') depth++;
      else if (c === ')') depth--;
      if (visit(c, depth, i)) return i;
    }
  }
  return -1;
}

/** Splits a regex source at its top-level `|` (outside groups and character classes). */
function topLevelAlternatives(src: string): string[] {
  const parts: string[] = [];
  let last = 0;
  walkSource(src, 0, (c, depth, at) => {
    if (c === '|' && depth === 0) {
      parts.push(src.slice(last, at));
      last = at + 1;
    }
    return false;
  });
  parts.push(src.slice(last));
  return parts;
}

/**
 * Word-index keys at which every match of a language-neutral rule must start: the literal word
 * starts of each top-level alternative (after a leading `\b`, with a wrapping group opened), or
 * null when an alternative has none. `extra` names the alternatives with no word start that the
 * rule's `leadChars` cover instead.
 */
function sourceLead(src: string, extra = 0): string[] | null {
  let s = src.startsWith('\\b') ? src.slice(2) : src;
  // One group around the whole pattern (optionally followed by `\b`): look inside it.
  const inner = topLevelAlternatives(s);
  if (inner.length === 1 && s.startsWith('(?:')) {
    const close = matchingParen(s, 0);
    const rest = s.slice(close + 1);
    if (rest === '' || rest === '\\b') s = s.slice(3, close);
  }
  const out: string[] = [];
  let skipped = 0;
  for (let a of topLevelAlternatives(s)) {
    if (a.startsWith('\\b')) a = a.slice(2);
    const starts = literalStartOf(a);
    if (starts === null) {
      if (++skipped > extra) return null;
      continue;
    }
    out.push(...starts);
  }
  return skipped === extra ? [...new Set(out)] : null;
}

/** The index of the `)` that closes the group opened at `open` (-1 when none). */
function matchingParen(s: string, open: number): number {
  return walkSource(s, open, (c, depth) => c === ')' && depth === 0);
}

/**
 * Language-neutral rules whose matches start at a literal word: they run as sticky regexes at
 * those word starts (and at the `leadChars`, for alternatives that start with a symbol).
 */
const NEUTRAL_LEAD_CHARS: Readonly<Record<string, string[]>> = {
  // `(?:\[|\()?(?:🔓|🔒)` and `\[(?:jailbreak|…)\]`.
  'persona.named': ['[', '(', '🔓', '🔒'],
};
/** Tails (see `Rule.tail`) of language-neutral rules: the element after their last gap. */
const NEUTRAL_TAILS: Readonly<Record<string, { keys: string[]; re: RegExp; direct?: string[] }>> = {
  // "respond … two different answers"; "normal response and …" and "respond as both" start at their own first word.
  'persona.two-answers': { keys: ['w:two'], re: /two (?:(?:different |separate |distinct )?(?:responses|answers|ways)|(?:different|separate|distinct) paragraphs)/y, direct: ['p:normal', 'p:classi', 'p:standa', 'w:respond'] },
  'indirect.exfil-action': { keys: ['w:to'], re: /(?:to (?:this|the following|my) (?:address|url|email|server|endpoint|link)|to https?:\/\/|to [\w.+-]{1,40}@[\w-]{1,40}\.[a-z]{2,6})/y },
};
for (const r of LANGUAGE_NEUTRAL) {
  const chars = NEUTRAL_LEAD_CHARS[r.id];
  const lead = sourceLead(r.re.source, chars === undefined ? 0 : 2);
  if (lead === null) continue;
  r.lead = lead;
  if (chars !== undefined) r.leadChars = chars;
  r.sticky = new RegExp(r.re.source, 'y');
  const tail = NEUTRAL_TAILS[r.id];
  if (tail !== undefined) {
    if (!r.re.source.includes(tail.re.source)) throw new Error(`rule ${r.id}: tail is not part of the pattern`);
    r.tail = tail;
  }
}

/** All compiled rules (English first, then the other languages, then language-neutral rules). */
export const RULES: readonly Rule[] = Object.freeze([...FAMILIES.flatMap(familyRules), ...LANGUAGE_NEUTRAL]);

/**
 * Output-directed rules end in "your|the|…'s <noun>" (`indirect.your-output`: "… in your
 * response", `indirect.your-response`: "your answer should …", "… the assistant's reply"). Such
 * a noun, right after "your ", "the " or "'s ", must start within `TAIL_WINDOW` code units after
 * the match start (the longest first word, the longest bounded gap and connector, plus margin),
 * so candidates without one are not tried.
 */
const TAIL_NOUN_KEYS = ['p:respon', 'p:answer', 'p:reply', 'p:output', 'p:summar', 'p:code', 'p:soluti', 'p:messag', 'p:result', 'p:comple'];
const TAIL_WINDOW: Readonly<Record<string, number>> = { 'indirect.your-output': 400, 'indirect.your-response': 120 };

/** The word-index keys any rule asks for (others are not indexed), each with a number. */
const KEYS: readonly string[] = [...new Set([...RULES.flatMap((r) => [...(r.lead ?? []), ...(r.anchors ?? []).flat(), ...(r.tail?.keys ?? []), ...(r.tail?.direct ?? [])]), ...TAIL_NOUN_KEYS].filter((k) => !k.startsWith('s:')))];
const KEY_ID = new Map(KEYS.map((k, i) => [k, i]));
const TAIL_NOUN_IDS = Int32Array.from(TAIL_NOUN_KEYS, (k) => KEY_ID.get(k)!);
const RULE_TAIL_WINDOW = Int32Array.from(RULES, (r) => TAIL_WINDOW[r.id] ?? 0);

/** Languages with phrase families. */
export const RULE_LANGUAGES: readonly string[] = FAMILIES.map((f) => f.lang);

/** A rule match on the matching view. */
export interface RuleMatch {
  rule: Rule;
  start: number;
  end: number;
}

/** At most this many matches are collected per rule (bounds the work on repetitive input). */
const MAX_MATCHES_PER_RULE = 64;

/** Alphabet of indexed words: a–z, 0–9 and the apostrophe. */
function symbolOf(c: number): number {
  if (c >= 97 && c <= 122) return c - 97;
  if (c >= 48 && c <= 57) return c - 48 + 26;
  return c === 39 ? 36 : -1;
}
const SYMBOLS = 37;
/** `symbolOf` of the code units below 128. */
const SYMBOL = Int8Array.from({ length: 128 }, (_, c) => symbolOf(c));
/** 1 for a–z and 0–9. */
const WORD = Uint8Array.from({ length: 128 }, (_, c) => (symbolOf(c) >= 0 && c !== 39 ? 1 : 0));

/**
 * A trie over the needed keys (prefixes `p:` of up to 6 characters and whole words `w:`), so
 * indexing a text walks each word once without building strings for words no rule asks for.
 * `pKey`/`wKey` hold the key number reached at a node, or -1.
 */
const TRIE = (() => {
  const child: number[] = [];
  const pKey: number[] = [];
  const wKey: number[] = [];
  const node = () => {
    for (let k = 0; k < SYMBOLS; k++) child.push(0);
    pKey.push(-1);
    wKey.push(-1);
    return pKey.length - 1;
  };
  node();
  KEYS.forEach((key, id) => {
    const word = key.slice(2);
    let at = 0;
    for (let i = 0; i < word.length; i++) {
      const sym = symbolOf(word.charCodeAt(i));
      if (sym < 0) throw new Error(`rule key ${key}: not an indexable word`);
      let next = child[at * SYMBOLS + sym]!;
      if (next === 0) {
        next = node();
        child[at * SYMBOLS + sym] = next;
      }
      at = next;
    }
    if (key.startsWith('p:')) pKey[at] = id;
    else wKey[at] = id;
  });
  return { child: Int32Array.from(child), pKey: Int32Array.from(pKey), wKey: Int32Array.from(wKey) };
})();

/** Whether the WebAssembly kernel scans for the word index (it holds the trie). */
const KERNEL_WORDS = KERNEL !== undefined && KERNEL.setTrie(TRIE.child, TRIE.pKey, TRIE.wKey, SYMBOL);

/**
 * Word index of the text being matched (module scratch, valid during one `matchRules` call):
 * per key number the word start positions in ascending order, and the keys present.
 */
const POSITIONS: number[][] = KEYS.map(() => []);
/** Scratch lists longer than this are dropped after use (a 1 MiB text must not pin megabytes). */
const SCRATCH_KEEP = 16384;
/** How many entries of each POSITIONS list belong to the current text. */
const COUNTS = new Int32Array(KEYS.length);
const PRESENT: number[] = [];

/**
 * Indexes the words of a folded text: for every word (a run of `[a-z0-9']` not starting with an
 * apostrophe) its prefixes of 1–6 characters (`p:…`) and the whole word (`w:…`, up to 24
 * characters) that some rule asks for.
 */
function wordIndex(fold: string): void {
  for (let k = 0; k < PRESENT.length; k++) {
    const key = PRESENT[k]!;
    // Lists grown by a very long text are not kept for the next one.
    if (COUNTS[key]! > SCRATCH_KEEP) POSITIONS[key] = [];
    COUNTS[key] = 0;
  }
  if (CANDIDATES.length > SCRATCH_KEEP) CANDIDATES = new Int32Array(1024);
  if (TAILS.length > SCRATCH_KEEP) TAILS = new Int32Array(64);
  PRESENT.length = 0;
  const n = fold.length;
  if (KERNEL_WORDS && n <= KERNEL_PREP_MAX) {
    wordIndexKernel(KERNEL!, fold);
    return;
  }
  const { child, pKey, wKey } = TRIE;
  let i = 0;
  while (i < n) {
    let c = fold.charCodeAt(i);
    if (!((c >= 97 && c <= 122) || (c >= 48 && c <= 57))) {
      i++;
      continue;
    }
    // One pass over the word: its symbols, walked down the trie while it has a path for them.
    const start = i;
    let at = 0;
    let apostrophe = false;
    for (; i < n; i++) {
      c = fold.charCodeAt(i);
      const sym = c < 128 ? SYMBOL[c]! : -1;
      if (sym < 0) break;
      if (sym === 36) apostrophe = true;
      at = child[at * SYMBOLS + sym]!;
      if (at === 0) break;
      if (i - start < 6) {
        const pk = pKey[at]!;
        if (pk >= 0) addPosition(pk, start);
      }
    }
    if (at !== 0) {
      // The trie walked the whole word.
      if (i - start <= 24) {
        const wk = wKey[at]!;
        if (wk >= 0) addPosition(wk, start);
      }
    } else {
      // The rest of the word.
      for (i++; i < n; i++) {
        c = fold.charCodeAt(i);
        if (c < 128 && WORD[c] === 1) continue;
        if (c === 39) apostrophe = true;
        else break;
      }
    }
    if (apostrophe) apostropheParts(fold, start, i);
  }
}

/** Indexes every part after an apostrophe of the word fold[start, end) (a regex \b also starts a word there). */
function apostropheParts(fold: string, start: number, end: number): void {
  const { child, pKey, wKey } = TRIE;
  for (let s = start + 1; s < end; s++) {
    if (fold.charCodeAt(s - 1) !== 39 || fold.charCodeAt(s) === 39) continue;
    let node = 0;
    let t = s;
    for (; t < end; t++) {
      node = child[node * SYMBOLS + symbolOf(fold.charCodeAt(t))]!;
      if (node === 0) break;
      if (t - s < 6) {
        const pk = pKey[node]!;
        if (pk >= 0) addPosition(pk, s);
      }
    }
    if (node !== 0 && t === end && end - s <= 24) {
      const wk = wKey[node]!;
      if (wk >= 0) addPosition(wk, s);
    }
  }
}

/**
 * wordIndex's scan of a text of at most KERNEL_PREP_MAX code units by the WebAssembly kernel
 * (kernel.ts `words`): the same keys at the same positions in the same order; the parts after an
 * apostrophe are indexed here when the kernel marks such a word.
 */
function wordIndexKernel(kernel: Kernel, fold: string): void {
  const count = kernel.words(fold);
  const events = kernel.events;
  const n = fold.length;
  for (let x = 0; x < count; x++) {
    const e = events[x]!;
    const key = e >>> 16;
    const pos = e & 0xffff;
    if (key !== 0xffff) {
      addPosition(key, pos);
      continue;
    }
    // The word runs over [a-z0-9'] from its start.
    let end = pos + 1;
    while (end < n) {
      const c = fold.charCodeAt(end);
      if (c >= 128 || SYMBOL[c]! < 0) break;
      end++;
    }
    apostropheParts(fold, pos, end);
  }
}

function addPosition(key: number, pos: number): void {
  const list = POSITIONS[key]!;
  const count = COUNTS[key]!;
  if (count === 0) PRESENT.push(key);
  else if (list[count - 1] === pos) return;
  if (count < list.length) list[count] = pos;
  else list.push(pos);
  COUNTS[key] = count + 1;
}

/**
 * Inverted anchor index: for every key number, the (rule, group bit) pairs it satisfies, so the
 * anchor groups of all rules are checked with one pass over the keys present in a text.
 * Groups with substring anchors (`s:`) are checked per rule, only when still needed.
 */
const ANCHOR_USERS: number[][] = KEYS.map(() => []);
const FULL_MASK = new Int32Array(RULES.length);
const HAS_SUBSTRING_ANCHORS = new Uint8Array(RULES.length);
/** Per rule and anchor group, the substrings of its `s:` anchors. */
const SUBSTRING_ANCHORS: string[][][] = RULES.map((r) => (r.anchors ?? []).map((g) => g.filter((a) => a.startsWith('s:')).map((a) => a.slice(2))));
/** Key numbers of each rule's tail keys. */
const TAIL_IDS: (Int32Array | undefined)[] = RULES.map((r) => (r.tail ? Int32Array.from(r.tail.keys, (k) => KEY_ID.get(k)!) : undefined));
const DIRECT_IDS: (Int32Array | undefined)[] = RULES.map((r) => (r.tail?.direct ? Int32Array.from(r.tail.direct, (k) => KEY_ID.get(k)!) : undefined));
/** Key numbers of each rule's `lead`. */
const LEAD_IDS: (Int32Array | undefined)[] = [];
RULES.forEach((rule, ri) => {
  const groups = rule.anchors ?? [];
  if (groups.length > 30) throw new Error(`rule ${rule.id}: too many anchor groups`);
  FULL_MASK[ri] = (1 << groups.length) - 1;
  groups.forEach((group, gi) => {
    for (const a of group) {
      if (a.startsWith('s:')) {
        HAS_SUBSTRING_ANCHORS[ri] = 1;
        continue;
      }
      ANCHOR_USERS[KEY_ID.get(a)!]!.push(ri, 1 << gi);
    }
  });
  LEAD_IDS.push(rule.lead && rule.sticky ? Int32Array.from(rule.lead, (k) => KEY_ID.get(k)!) : undefined);
});

/** Anchor group bits satisfied by the indexed words, per rule (module scratch). */
const MASKS = new Int32Array(RULES.length);

function anchorMasks(): Int32Array {
  MASKS.fill(0);
  for (let k = 0; k < PRESENT.length; k++) {
    const users = ANCHOR_USERS[PRESENT[k]!]!;
    for (let u = 0; u < users.length; u += 2) MASKS[users[u]!]! |= users[u + 1]!;
  }
  return MASKS;
}

function anchorsPresent(ri: number, mask: number, fold: string): boolean {
  const rule = RULES[ri]!;
  const needles = rule.needles;
  if (needles !== undefined) {
    let found = false;
    for (let k = 0; k < needles.length && !found; k++) found = fold.includes(needles[k]!);
    if (!found) return false;
  }
  if (mask === FULL_MASK[ri]) return true;
  if (!HAS_SUBSTRING_ANCHORS[ri]) return false;
  // Groups not yet satisfied by words may be satisfied by a substring anchor.
  const groups = SUBSTRING_ANCHORS[ri]!;
  for (let gi = 0; gi < groups.length; gi++) {
    if (mask & (1 << gi)) continue;
    const subs = groups[gi]!;
    let found = false;
    for (let k = 0; k < subs.length && !found; k++) found = fold.includes(subs[k]!);
    if (!found) return false;
  }
  return true;
}

/** Candidate start positions of one rule (module scratch). */
let CANDIDATES = new Int32Array(1024);

/**
 * Collects the start positions of a rule's lead keys (and lead characters) into CANDIDATES, in
 * ascending order; returns how many.
 */
function candidates(ids: Int32Array, chars: string[] | undefined, fold: string): number {
  let count = 0;
  let lists = 0;
  for (let k = 0; k < ids.length; k++) {
    const list = POSITIONS[ids[k]!]!;
    const len = COUNTS[ids[k]!]!;
    if (len === 0) continue;
    if (count + len > CANDIDATES.length) {
      const grown = new Int32Array(Math.max(2 * CANDIDATES.length, count + len));
      grown.set(CANDIDATES.subarray(0, count));
      CANDIDATES = grown;
    }
    for (let j = 0; j < len; j++) CANDIDATES[count++] = list[j]!;
    lists++;
  }
  if (chars !== undefined) {
    for (const ch of chars) {
      for (let p = fold.indexOf(ch); p >= 0; p = fold.indexOf(ch, p + 1)) {
        if (count === CANDIDATES.length) {
          const grown = new Int32Array(2 * CANDIDATES.length);
          grown.set(CANDIDATES);
          CANDIDATES = grown;
        }
        CANDIDATES[count++] = p;
        lists = 2;
      }
    }
  }
  // One list is already in order; several are sorted (duplicates are skipped by the caller).
  if (lists > 1) {
    if (count > 32) CANDIDATES.subarray(0, count).sort();
    else {
      // Few positions: an insertion sort costs less than a native sort call.
      for (let k = 1; k < count; k++) {
        const v = CANDIDATES[k]!;
        let j = k - 1;
        while (j >= 0 && CANDIDATES[j]! > v) {
          CANDIDATES[j + 1] = CANDIDATES[j]!;
          j--;
        }
        CANDIDATES[j + 1] = v;
      }
    }
  }
  return count;
}

/** Starts of the tail nouns of the text being matched (module scratch), and how many; -1 before they are collected. */
let TAILS = new Int32Array(64);
let tailCount = -1;

/** Collects the tail nouns that follow "your ", "the " or "'s ", in ascending order. */
function collectTails(fold: string): number {
  const n = candidates(TAIL_NOUN_IDS, undefined, fold);
  if (TAILS.length < n) TAILS = new Int32Array(n);
  let count = 0;
  for (let k = 0; k < n; k++) {
    const q = CANDIDATES[k]!;
    if (q > 0 && fold.charCodeAt(q - 1) === 32 && (fold.startsWith('your', q - 5) || fold.startsWith('the', q - 4) || fold.startsWith("'s", q - 3))) TAILS[count++] = q;
  }
  return count;
}

/** The last word start at which a rule's tail matches, or -1. */
function lastTail(ids: Int32Array, re: RegExp, fold: string): number {
  let best = -1;
  for (let k = 0; k < ids.length; k++) {
    const list = POSITIONS[ids[k]!]!;
    for (let j = COUNTS[ids[k]!]! - 1; j >= 0; j--) {
      const q = list[j]!;
      if (q <= best) break;
      re.lastIndex = q;
      if (re.test(fold)) {
        best = q;
        break;
      }
    }
  }
  return best;
}

/** Runs every rule over a matching view (the `fold` view) and returns the matches. */
export function matchRules(fold: string): RuleMatch[] {
  const out: RuleMatch[] = [];
  wordIndex(fold);
  const masks = anchorMasks();
  tailCount = -1;
  for (let ri = 0; ri < RULES.length; ri++) {
    const rule = RULES[ri]!;
    const mask = masks[ri]!;
    const ids = LEAD_IDS[ri];
    if (ids !== undefined) {
      // The substring checks (needles, substring anchors) only decide whether matches count, so
      // they wait for the first match; words missing from an anchor group rule the rule out now.
      if (mask !== FULL_MASK[ri] && !HAS_SUBSTRING_ANCHORS[ri]) continue;
      // Only where the first element can start: sticky matches at those positions, in order.
      const sticky = rule.sticky!;
      const window = RULE_TAIL_WINDOW[ri]!;
      if (window > 0) {
        if (tailCount < 0) tailCount = collectTails(fold);
        if (tailCount === 0) continue;
      }
      // A match starts before its tail: nothing to try from the last tail on.
      const tailIds = TAIL_IDS[ri];
      let limit = tailIds === undefined ? fold.length : lastTail(tailIds, rule.tail!.re, fold);
      const directIds = DIRECT_IDS[ri];
      if (directIds !== undefined) {
        for (let k = 0; k < directIds.length; k++) {
          const len = COUNTS[directIds[k]!]!;
          if (len > 0) limit = Math.max(limit, POSITIONS[directIds[k]!]![len - 1]! + 1);
        }
      }
      if (limit <= 0) continue;
      const n = candidates(ids, rule.leadChars, fold);
      let lastEnd = -1;
      let prev = -1;
      let count = 0;
      let tail = 0;
      for (let k = 0; k < n; k++) {
        const p = CANDIDATES[k]!;
        if (p >= limit) break;
        if (p < lastEnd || p === prev) continue;
        prev = p;
        if (window > 0) {
          while (tail < tailCount && TAILS[tail]! <= p) tail++;
          if (tail === tailCount || TAILS[tail]! > p + window) continue;
        }
        sticky.lastIndex = p;
        if (!sticky.test(fold)) continue;
        const end = sticky.lastIndex;
        if (end === p) continue;
        if (count === 0 && !anchorsPresent(ri, mask, fold)) break;
        out.push({ rule, start: p, end });
        lastEnd = end;
        if (++count >= MAX_MATCHES_PER_RULE) break;
      }
      continue;
    }
    if (!anchorsPresent(ri, mask, fold)) continue;
    rule.re.lastIndex = 0;
    let count = 0;
    let m: RegExpExecArray | null;
    while ((m = rule.re.exec(fold)) !== null) {
      if (m[0].length === 0) {
        rule.re.lastIndex++;
        continue;
      }
      out.push({ rule, start: m.index, end: m.index + m[0].length });
      if (++count >= MAX_MATCHES_PER_RULE) break;
    }
  }
  return out;
}
