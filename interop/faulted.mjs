// socket.io-client 4 in Node through the harness's fault proxy:
//   node faulted.mjs PROXY_URL SERVER_URL TAG [TRANSPORTS]
// The timeline is faulted.js's; {"ready":true} on stdout starts the driver's
// clock, and one JSON line at the end says what everyone saw.
import { io } from 'socket.io-client';
import { faultedFlow } from './faulted.js';

const [proxyUrl, serverUrl, tag, transports = 'websocket,polling'] = process.argv.slice(2);
const result = await faultedFlow({
  io,
  aliceUrl: proxyUrl,
  serverUrl,
  tag,
  transports: transports.split(','),
  fetchImpl: fetch,
  ready: (ok) => console.log(JSON.stringify({ ready: ok })),
});
console.log(JSON.stringify({ client: 'node', ...result }));
process.exit(0);
