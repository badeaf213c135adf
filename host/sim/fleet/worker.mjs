// Entry of a fleet worker thread: host code is TypeScript, loaded through tsx (as bin/ does).
import { register } from 'tsx/esm/api';

register();
await import('./worker-main.ts');
