// socket.io-client 4 in Node: `node node.mjs URL TAG websocket,polling`.
import { io } from 'socket.io-client';
import { chatFlow } from './flow.js';

const [url, tag, transports = 'websocket,polling'] = process.argv.slice(2);
const result = await chatFlow({ io, url, transports: transports.split(','), tag, fetchImpl: fetch });
console.log(JSON.stringify({ client: 'node', transports, ...result }));
process.exit(0);
