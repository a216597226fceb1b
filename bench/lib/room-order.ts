// Which room client c of a room load (`chat`, `direct`, `soak`, and the crosscheck's ws generator)
// is in. Clients send in turn, so the assignment decides the order in which rooms see sends:
// 'spread', room c % rooms: consecutive sends go to different rooms (`chat`, `soak`);
// 'grouped', room floor(c / size) with size = clients / rooms: a room's members are consecutive
// clients and send back to back (`direct`). A server pays less per message for grouped sends (uWS
// writes a room's consecutive messages to each member at once): BENCHMARKS.md, "Two generators".
export type SendOrder = 'spread' | 'grouped';

export function roomIndex(order: SendOrder, c: number, clients: number, rooms: number): number {
  return order === 'spread' ? c % rooms : Math.floor(c / Math.max(1, Math.floor(clients / rooms))) % rooms;
}
