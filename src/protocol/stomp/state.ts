// A STOMP connection's own state: its subscriptions, parser, heart-beats and the frames that wait
// for its CONNECT to be authenticated. Created at upgrade for STOMP connections only.

import { escapeHeader, StompParser, type StompFrame } from './parser.ts';

export type StompStyle = 'native' | 'tutorial';

export interface StompSub {
  id: string;
  room: string;
  style: StompStyle;
  destination: string;
  /** The uWS topic this subscription is published on: one per (style, subscription id, room). */
  topic: string;
  /** The MESSAGE frame's fixed headers for this subscription, escaped once. */
  head: string;
}

export function newSub(id: string, room: string, style: StompStyle, destination: string): StompSub {
  const head = `MESSAGE\ndestination:${escapeHeader(destination)}\nsubscription:${escapeHeader(id)}\ncontent-type:application/json\nroom:${room}\n`;
  return { id, room, style, destination, topic: `t/${style}/${id}/${room}`, head };
}

export class StompState {
  connected = false;
  version = '1.2';
  readonly parser: StompParser;
  /** subscription id -> subscription */
  readonly subs = new Map<string, StompSub>();
  /** room -> subscription (one per room and connection) */
  readonly byRoom = new Map<string, StompSub>();
  /** Identity still to be established by CONNECT (jwt mode, or none mode without ?user=). */
  needsIdentity: boolean;
  /**
   * While a CONNECT's identity is being checked: the frames that came after it (in the same
   * WebSocket message or later), handled in order once CONNECTED is sent. Null otherwise.
   */
  waiting: StompFrame[] | null = null;
  sendEvery = 0;
  expectEvery = 0;
  lastIn = Date.now();
  lastBeat = Date.now();
  /** When the connection opened: its CONNECT must be done within CHAT_AUTH_TIMEOUT. */
  readonly openedAt = Date.now();

  constructor(maxFrame: number, needsIdentity: boolean) {
    this.parser = new StompParser({ maxFrame, maxHeaders: 32, maxHeaderLine: 4096 });
    this.needsIdentity = needsIdentity;
  }
}
