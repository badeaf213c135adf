/**
 * What one partition of the fleet reports back (plain data: it crosses worker_threads), and the
 * merge of partitions. A device's outcome is one small record, whatever the fleet size; series are
 * per hour (deliveries, bytes) or per minute (the alarm's inputs), summed over partitions.
 */
import type { Profile, SessionEvent } from '../../session-abi.ts';
import type { AppPattern, DeviceKind } from './spec.ts';

export interface DeviceOutcome {
  index: number;
  kind: DeviceKind;
  pattern: AppPattern;
  wakeEveryMs: number;
  awakeMs: number;
  wakes: number;
  /** Start of the first wake after the cache crash (null: the replay ended first). */
  firstWakeAfterCrashMs: number | null;
  /** When the device was back in a session the cloud has, after the crash (null: never). */
  healedAtMs: number | null;
  /** Why the firmware dropped the old session before that (a discard reason), or 'none'. */
  healedBy: string | null;
  /** Wakes after the crash that ended without reaching the cloud. */
  stuckWakes: number;
  published: number;
  /** Distinct events (incarnation, seq) the cloud delivered to the webhook. */
  delivered: number;
  duplicates: number;
  /** Readings the firmware dropped (legacy: at sleep) or refused (outbox full). */
  lost: number;
  /** Published, neither delivered nor lost: still in the outbox when the replay ended. */
  pending: number;
  bytesUp: number;
  bytesDown: number;
  /** Bytes on the air (both ways) in the wakes between the first stuck wake and the heal. */
  bytesStuck: number;
  handshakes: number;
}

/** One wake of a traced device (`--trace`): what the one-device timeline prints. */
export interface TracedWake {
  wake: number;
  atMs: number;
  events: SessionEvent[];
  /** Event sequence numbers the cloud delivered during this wake. */
  delivered: number[];
  datagramsUp: number;
  bytesUp: number;
  datagramsDown: number;
  bytesDown: number;
  /** Heals the cloud sent in this wake, by kind ('malformed': the 2019 datagram; 'reset-token': ours). */
  healsSent: ('malformed' | 'reset-token')[];
}

/** One datagram on the air, for `--pcap`. */
export interface CapturedDatagram {
  atMs: number;
  /** "a.b.c.d:port" */
  src: string;
  dst: string;
  data: Uint8Array;
}

export interface PartitionResult {
  profile: Profile;
  devices: DeviceOutcome[];
  /** The step of the series below (seriesStepMs: an hour for a replay of days). */
  stepMs: number;
  /** Webhook deliveries (first deliveries and duplicates) per step. */
  deliveriesPerStep: number[];
  /** Bytes on the air per day (both ways), summed over the partition's devices. */
  bytesPerDay: number[];
  /** Per minute: records of known devices the cloud could not decrypt, and datagrams in (SleepyCloudSessionsLost's inputs). */
  undecryptablePerMinute: number[];
  datagramsInPerMinute: number[];
  /** First minute a device had more than 3 undecryptable records within an hour (SleepyCloudDeviceStuck), or -1. */
  deviceStuckAlertMinute: number;
  /** Undecryptable records per step. */
  undecryptablePerStep: number[];
  /** Heals the cloud sent (reset tokens, malformed datagrams) per step. */
  healsSentPerStep: number[];
  wakes: number;
  cloudInternalErrors: number;
  trace: TracedWake[] | null;
  capture: CapturedDatagram[];
}

function addInto(into: number[], from: number[]): void {
  for (let i = 0; i < from.length; i++) into[i] = (into[i] ?? 0) + from[i];
}

/** Sums the partitions of one profile. */
export function mergePartitions(parts: PartitionResult[]): PartitionResult {
  const out: PartitionResult = {
    profile: parts[0].profile, devices: [], stepMs: parts[0].stepMs, deliveriesPerStep: [], bytesPerDay: [], undecryptablePerMinute: [], datagramsInPerMinute: [],
    deviceStuckAlertMinute: -1, undecryptablePerStep: [], healsSentPerStep: [], wakes: 0, cloudInternalErrors: 0,
    trace: null, capture: [],
  };
  for (const p of parts) {
    out.devices.push(...p.devices);
    addInto(out.deliveriesPerStep, p.deliveriesPerStep);
    addInto(out.bytesPerDay, p.bytesPerDay);
    addInto(out.undecryptablePerMinute, p.undecryptablePerMinute);
    addInto(out.datagramsInPerMinute, p.datagramsInPerMinute);
    addInto(out.undecryptablePerStep, p.undecryptablePerStep);
    addInto(out.healsSentPerStep, p.healsSentPerStep);
    if (p.deviceStuckAlertMinute >= 0 && (out.deviceStuckAlertMinute < 0 || p.deviceStuckAlertMinute < out.deviceStuckAlertMinute)) {
      out.deviceStuckAlertMinute = p.deviceStuckAlertMinute;
    }
    out.wakes += p.wakes;
    out.cloudInternalErrors += p.cloudInternalErrors;
    out.trace ??= p.trace;
    out.capture.push(...p.capture);
  }
  out.devices.sort((a, b) => a.index - b.index);
  out.capture.sort((a, b) => a.atMs - b.atMs);
  return out;
}
