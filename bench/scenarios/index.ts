import type { Scenario } from './types.ts';
import { chat } from './chat.ts';
import { fanout } from './fanout.ts';
import { direct } from './direct.ts';
import { soak } from './soak.ts';

export const SCENARIOS: Record<string, Scenario> = { chat, fanout, direct, soak };
