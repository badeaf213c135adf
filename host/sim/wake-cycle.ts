/**
 * The application of a sleepy device: wake every `wakeEveryMs`, publish a reading, work for
 * `appAwakeMs`, then ask to sleep and stay awake only as long as the firmware asks.
 */
import type { Device } from '../device.ts';
import type { World } from './world.ts';

export interface WakeCycleOptions {
  wakeEveryMs: number;
  /** Time the application itself stays awake after wake-up before asking to sleep. */
  appAwakeMs: number;
  publishEveryWake: boolean;
  /** Called at each wake before the firmware boots (events of the boot belong to this wake). */
  beforeWake?: (device: Device, wake: number, nowMs: number) => void;
  /** Called at each wake, after boot. */
  onWake?: (device: Device, wake: number, nowMs: number) => void;
  onSleep?: (device: Device, wake: number, nowMs: number) => void;
}

export function startWakeCycle(world: World, device: Device, opts: WakeCycleOptions, firstWakeMs: number): void {
  let wake = 0;
  const doWake = async (): Promise<void> => {
    wake++;
    const n = wake;
    opts.beforeWake?.(device, n, world.nowMs);
    await device.wake(world.nowMs);
    opts.onWake?.(device, n, world.nowMs);
    if (opts.publishEveryWake) {
      try {
        device.publish(world.nowMs, 'reading', Buffer.from(`wake ${n}`));
      } catch {
        // outbox full: the timeline shows it through the missing sequence number
      }
    }
    world.armDeviceTimer(device);
    world.schedule(world.nowMs + opts.appAwakeMs, () => trySleep(n));
  };
  const trySleep = (n: number): void => {
    if (!device.awake || n !== wake) return; // a check left over from an earlier wake
    const waitMs = device.prepareSleep(world.nowMs);
    if (waitMs > 0) {
      world.armDeviceTimer(device);
      world.schedule(world.nowMs + waitMs, () => trySleep(n));
      return;
    }
    opts.onSleep?.(device, n, world.nowMs);
    device.sleep();
    world.schedule(world.nowMs + opts.wakeEveryMs, doWake);
  };
  world.schedule(firstWakeMs, doWake);
}
