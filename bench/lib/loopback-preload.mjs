// Preload (`node --import`) that forces every net.Server.listen in the process onto 127.0.0.1,
// so a peer gateway that binds all interfaces by default (Portkey) stays on loopback in benches.
import net from 'node:net';

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function loopbackListen(...args) {
  const a = args[0];
  if (a !== null && typeof a === 'object' && !Array.isArray(a) && a.path === undefined) {
    args[0] = { ...a, host: '127.0.0.1' };
  } else if (typeof a === 'number' || (typeof a === 'string' && /^\d+$/.test(a))) {
    if (typeof args[1] === 'string') args[1] = '127.0.0.1';
    else args.splice(1, 0, '127.0.0.1');
  } else if (typeof a === 'function' || a === undefined) {
    args.unshift(0, '127.0.0.1');
  }
  return listen.apply(this, args);
};
