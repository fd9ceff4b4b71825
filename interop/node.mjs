// socket.io-client 4 in Node: `node node.mjs URL TAG websocket,polling`;
// INTEROP_TOKENS (a JSON object name → JWT) makes it a contract v2 client.
import { io } from 'socket.io-client';
import { chatFlow } from './flow.js';

const [url, tag, transports = 'websocket,polling'] = process.argv.slice(2);
const tokens = process.env.INTEROP_TOKENS ? JSON.parse(process.env.INTEROP_TOKENS) : undefined;
const result = await chatFlow({ io, url, transports: transports.split(','), tag, fetchImpl: fetch, tokens });
console.log(JSON.stringify({ client: 'node', transports, ...result }));
process.exit(0);
