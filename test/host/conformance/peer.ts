/**
 * The scripted TestPeer with what a real DTLS server does when datagrams are lost: it retransmits
 * its last flight with fresh record sequence numbers (RFC 6347 §4.2.4), either on its own timer
 * (`resendLastFlight`) or when the client retransmits a flight it already answered. TestPeer
 * alone would process a retransmitted ClientKeyExchange twice.
 */
import { TestPeer } from '../dtls-peer.ts';
import { openRecord, parseRecords, plainRecord } from '../dtls-ref.ts';

export class ResendingPeer {
  private lastFlight: Buffer[] = [];
  /** How many flights were sent again. */
  resent = 0;

  constructor(readonly peer: TestPeer) {}

  get connected(): boolean {
    return this.peer.connected;
  }

  /** Feeds one client datagram; returns the datagrams to send back. */
  handle(datagram: Uint8Array): Buffer[] {
    const cidLength = this.peer.opts.cid?.length ?? 0;
    const handshake = parseRecords(datagram, cidLength).some((r) => r.epoch === 0 && r.type === 22);
    // After Finished the only epoch-0 handshake a client sends is its flight 5 again: our final
    // flight was lost, so send it again instead of feeding TestPeer a second ClientKeyExchange.
    if (this.peer.connected && handshake) return this.resendLastFlight();
    const out = this.peer.handle(datagram);
    if (out.length > 0) this.lastFlight = out;
    return out;
  }

  /**
   * The last flight again: same messages, new record sequence numbers, re-sealed under epoch 1.
   * Not a HelloVerifyRequest: the server keeps no state for it and never resends it (RFC 6347
   * §4.2.1); the client's ClientHello retransmission covers its loss.
   */
  resendLastFlight(): Buffer[] {
    if (this.lastFlight.length === 0 || isHelloVerifyRequest(this.lastFlight[0])) return [];
    this.resent++;
    return this.lastFlight.map((d) =>
      Buffer.concat(
        parseRecords(d, this.peer.clientCid.length).map((r) => {
          if (r.epoch === 0) return plainRecord(r.type, this.peer.sendSeq0++, r.body, r.version);
          const keys = this.peer.keys!;
          const opened = openRecord(r, keys.serverKey, keys.serverIv);
          if (!opened) throw new Error('ResendingPeer: cannot open its own record');
          return this.peer.seal(opened.type, opened.content);
        }),
      ),
    );
  }
}

function isHelloVerifyRequest(datagram: Uint8Array): boolean {
  const [r] = parseRecords(datagram);
  return r !== undefined && r.epoch === 0 && r.type === 22 && r.body[0] === 3;
}
