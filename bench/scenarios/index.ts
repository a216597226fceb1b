import type { Scenario } from './types.ts';
import { chat } from './chat.ts';
import { fanout } from './fanout.ts';
import { direct } from './direct.ts';
import { soak } from './soak.ts';
import { openchat } from './openchat.ts';
import { history } from './history.ts';
import { storm } from './storm.ts';
import { abuse } from './abuse.ts';
import { idle } from './idle.ts';

export const SCENARIOS: Record<string, Scenario> = { chat, fanout, direct, openchat, storm, history, soak, abuse, idle };
