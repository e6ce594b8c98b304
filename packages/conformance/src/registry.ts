import { apiScenarios } from './scenarios/api.js';
import { attestationScenarios } from './scenarios/attestation.js';
import { authorizeScenarios } from './scenarios/authorize.js';
import { discoveryScenarios } from './scenarios/discovery.js';
import { flowScenarios } from './scenarios/flows.js';
import { registrationScenarios } from './scenarios/registration.js';
import { tokenBasicScenarios } from './scenarios/token-basic.js';
import type { Scenario } from './types.js';

/** Every scenario, in run order (the K.* aggregate checks come after everything that produces errors). */
export const SCENARIOS: readonly Scenario[] = (() => {
  const all = [
    ...discoveryScenarios,
    ...attestationScenarios,
    ...registrationScenarios,
    ...authorizeScenarios,
    ...tokenBasicScenarios.filter((s) => !s.id.startsWith('K.')),
    ...flowScenarios,
    ...apiScenarios,
    ...tokenBasicScenarios.filter((s) => s.id.startsWith('K.')),
  ];
  const ids = new Set<string>();
  for (const s of all) {
    if (ids.has(s.id)) throw new Error(`duplicate scenario id ${s.id}`);
    ids.add(s.id);
  }
  return all;
})();

/** Checklist items this suite automates, by profile and mode. */
export function automatedChecklist(profile: 'basic' | 'full', mode: 'gateway' | 'native'): string[] {
  const ids = new Set<string>();
  for (const s of SCENARIOS) {
    if (!s.modes.includes(mode)) continue;
    if (profile === 'basic' && s.profile !== 'basic') continue;
    for (const c of s.checklist) ids.add(c);
  }
  return [...ids].sort();
}
