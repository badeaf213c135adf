/**
 * The replay's what-if parameters: one definition each, used by `start`'s flags and by `--sweep`
 * (so a swept value means exactly what the flag means). Each parses a text value (a UsageError-ready
 * message when it cannot) and returns the options with that one thing changed.
 */
import { FLEET_SCHEDULE, HOUR_MS, may, type FleetOptions, type RolloutStep } from './spec.ts';

export interface WhatIf {
  name: string;
  value: string;
  help: string;
  apply(o: FleetOptions, text: string): FleetOptions;
}

const num = (name: string, text: string, min: number, max: number): number => {
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || n < min || n > max) throw new RangeError(`--${name} must be a number ${min}..${max} (got '${text}')`);
  return n;
};

const schedule = (o: FleetOptions) => o.schedule ?? FLEET_SCHEDULE;

/** "7 16:00=0.1,8 13:00=1" (May day, PDT time, share) or "never". */
export function parseRollout(text: string): RolloutStep[] {
  if (text === 'never') return [];
  const steps = text.split(',').map((part) => {
    const m = /^(\d{1,2}) (\d{1,2}):(\d{2})=(\d+(?:\.\d+)?)$/.exec(part.trim());
    if (!m || Number(m[1]) < 2 || Number(m[1]) > 31 || Number(m[2]) > 23 || Number(m[3]) > 59 || Number(m[4]) > 1) {
      throw new RangeError(`--rollout must be 'never' or steps 'DAY HH:MM=SHARE' of May (PDT), share 0..1, comma-separated, e.g. '7 16:00=0.1,8 13:00=1' (got '${text}')`);
    }
    const share = Number(m[4]);
    return { atMs: may(Number(m[1]), Number(m[2]), Number(m[3])), share, label: `heal rollout ${Math.round(share * 100)}% (what-if)` };
  });
  for (let i = 1; i < steps.length; i++) {
    if (steps[i].atMs <= steps[i - 1].atMs) throw new RangeError(`--rollout steps must be in time order (got '${text}')`);
  }
  return steps;
}

export const WHAT_IFS: WhatIf[] = [
  {
    name: 'sleepy-share', value: 'F', help: 'share of sleepy devices, 0..1 (the rest are always connected)',
    apply: (o, t) => ({ ...o, sleepyShare: num('sleepy-share', t, 0, 1) }),
  },
  {
    name: 'quick-sleepers', value: 'F', help: 'what-if: share of sleepy devices that sleep within seconds of the publish, 0..1 (default 0.04)',
    apply: (o, t) => {
      const s = schedule(o);
      const q = num('quick-sleepers', t, 0, 1);
      return { ...o, schedule: { ...s, quickSleeperShare: q, updateWindowShare: Math.min(s.updateWindowShare, 1 - q) } };
    },
  },
  {
    name: 'update-window-share', value: 'F', help: 'what-if: share of sleepy devices that stay up 30 s–5 min for updates, 0..1 (default 0.3)',
    apply: (o, t) => {
      const s = schedule(o);
      const u = num('update-window-share', t, 0, 1);
      return { ...o, schedule: { ...s, updateWindowShare: u, quickSleeperShare: Math.min(s.quickSleeperShare, 1 - u) } };
    },
  },
  {
    name: 'give-up', value: 'SECONDS', help: "what-if: the firmware's CoAP give-up, 15..900 s (Device OS: 60; sets the ACK timeout to a 15th of it)",
    apply: (o, t) => ({ ...o, coapAckTimeoutMs: Math.round((num('give-up', t, 15, 900) * 1000) / 15) }),
  },
  {
    name: 'heal-delay', value: 'SECONDS', help: 'what-if: how late the malformed heal leaves the cloud until the May 15 change, 0..600 s (default 5)',
    apply: (o, t) => ({ ...o, timeline: { ...o.timeline, healDelayMs: Math.round(num('heal-delay', t, 0, 600) * 1000) } }),
  },
  {
    name: 'cache-back', value: 'never|HOURS', help: 'what-if: the lost session cache comes back with its data N hours after the crash, 0.1..1000 (default never, as in 2019)',
    apply: (o, t) => {
      const tl = { ...o.timeline };
      if (t === 'never') delete tl.cacheBackAfterMs;
      else tl.cacheBackAfterMs = Math.round(num('cache-back', t, 0.1, 1000) * HOUR_MS);
      return { ...o, timeline: tl };
    },
  },
  {
    name: 'rollout', value: 'STEPS', help: "what-if: the malformed heal's rollout, 'DAY HH:MM=SHARE,…' of May (PDT) or 'never' (default '7 16:00=0.1,8 09:00=0.25,8 11:00=0.5,8 13:00=1')",
    apply: (o, t) => ({ ...o, timeline: { ...o.timeline, rollout: parseRollout(t) } }),
  },
];

export function whatIf(name: string): WhatIf | undefined {
  return WHAT_IFS.find((w) => w.name === name);
}
