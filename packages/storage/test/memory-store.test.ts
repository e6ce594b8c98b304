import { createMemoryStore } from '../src/index.js';
import { describeStoreContract } from './store-contract.js';

describeStoreContract('memory', () => {
  const store = createMemoryStore();
  return Promise.resolve({
    store,
    // One process, one map: a "second instance" is the same store (closing it must not close the first).
    openPeer: () =>
      Promise.resolve(
        new Proxy(store, {
          get: (t, p) => (p === 'close' ? () => Promise.resolve() : (Reflect.get(t, p, t) as unknown)),
        }),
      ),
    crossInstanceEvents: true,
    dispose: () => store.close(),
  });
});
