// Web Worker entry of nextword-web: create it as a module worker, or let src/client.js do it:
//   new Worker(new URL('nextword-web/worker', import.meta.url), { type: 'module' })

import { serve } from './worker-core.js';

serve(globalThis);
