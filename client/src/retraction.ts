// DELETE and EDIT events name an earlier message (`target`). Applied to the copy an app holds of
// that message, they leave it as the engine's own copies show it from then on: deleted (text and
// editedAt erased, `deleted: true`), or edited (the newest text and `editedAt`); an edit of a
// deleted message changes nothing.

import type { IncomingMessage } from './protocol.ts';

/** A DELETE or EDIT event (it changes another message rather than being shown itself). */
export function isRetraction(m: Pick<IncomingMessage, 'type'>): boolean {
  return m.type === 'DELETE' || m.type === 'EDIT';
}

/**
 * Apply the DELETE or EDIT `event` to `copy`, the message it targets, in place. Returns false if
 * `event` is not a retraction of `copy` (another target, or not a DELETE or EDIT).
 */
export function applyRetraction(copy: IncomingMessage, event: IncomingMessage): boolean {
  if (!isRetraction(event) || event.target !== copy.id) return false;
  if (event.type === 'DELETE') {
    delete copy.text;
    delete copy.editedAt;
    copy.deleted = true;
  } else if (copy.deleted !== true) {
    copy.text = event.text;
    copy.editedAt = event.at;
  }
  return true;
}
