// The module's only import. The host learns why the firmware gave up (message and source
// position are static strings in linear memory) and then the module traps.
@external("env", "trap")
declare function hostTrap(messagePtr: usize, filePtr: usize, line: u32, column: u32): void;

export function onAbort(
  message: string | null = null, fileName: string | null = null, line: u32 = 0, column: u32 = 0,
): void {
  hostTrap(changetype<usize>(message), changetype<usize>(fileName), line, column);
  unreachable();
}
