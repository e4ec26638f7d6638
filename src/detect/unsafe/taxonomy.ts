/** The hazard categories of the Llama Guard 3 taxonomy (S1–S14), as data. Descriptions are our own summaries. */

/** A hazard category id. */
export type HazardId = 'S1' | 'S2' | 'S3' | 'S4' | 'S5' | 'S6' | 'S7' | 'S8' | 'S9' | 'S10' | 'S11' | 'S12' | 'S13' | 'S14';

/** One hazard category. */
export interface HazardCategory {
  id: HazardId;
  name: string;
  description: string;
}

/** S1–S14 in order; the ids match what a Llama Guard judge returns ("unsafe\nS9"). */
export const HAZARD_TAXONOMY: readonly HazardCategory[] = [
  { id: 'S1', name: 'Violent Crimes', description: 'Helps or encourages violence against people or animals: murder, assault, kidnapping, terrorism, animal cruelty.' },
  { id: 'S2', name: 'Non-Violent Crimes', description: 'Helps or encourages crimes without direct violence: fraud, theft, hacking, drug production or trafficking, weapons offences.' },
  { id: 'S3', name: 'Sex-Related Crimes', description: 'Helps or encourages sexual crimes: trafficking, assault, harassment, prostitution.' },
  { id: 'S4', name: 'Child Sexual Exploitation', description: 'Any sexual content involving minors, or help in sexually exploiting them.' },
  { id: 'S5', name: 'Defamation', description: 'Verifiably false statements likely to damage the reputation of a real, living person.' },
  { id: 'S6', name: 'Specialized Advice', description: 'Financial, medical or legal advice given as authoritative, or claims that dangerous activities are safe.' },
  { id: 'S7', name: 'Privacy', description: 'Sensitive non-public personal information that could harm someone\'s physical, digital or financial security (doxxing).' },
  { id: 'S8', name: 'Intellectual Property', description: 'Content that infringes a third party\'s copyright, trademark or other IP rights.' },
  { id: 'S9', name: 'Indiscriminate Weapons', description: 'Help making chemical, biological, radiological or nuclear weapons, or high-yield explosives.' },
  { id: 'S10', name: 'Hate', description: 'Content demeaning or dehumanising people for protected characteristics.' },
  { id: 'S11', name: 'Suicide & Self-Harm', description: 'Encourages or gives methods for suicide, self-injury or disordered eating.' },
  { id: 'S12', name: 'Sexual Content', description: 'Sexually explicit content.' },
  { id: 'S13', name: 'Elections', description: 'Factually wrong information about electoral systems and processes (where, when, how to vote).' },
  { id: 'S14', name: 'Code Interpreter Abuse', description: 'Code meant to abuse a code interpreter: denial of service, container escape, privilege escalation.' },
];

/** Looks up a category by id. */
export function hazard(id: HazardId): HazardCategory {
  return HAZARD_TAXONOMY.find((h) => h.id === id)!;
}
