// A large upload through a sidecar's HTTP API, streamed (never held in memory here).
import { request } from 'node:http';
import { writeBytes } from '../../test/framework/streams.js';

/** POSTs `bytes` to `/v1.0/invoke/<appId>/method/sink` on 127.0.0.1:`port`; resolves with "HTTP <status> <body>". */
export function upload(port: number, appId: string, bytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method: 'POST', path: `/v1.0/invoke/${appId}/method/sink`, headers: { 'content-length': bytes } },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve(`HTTP ${res.statusCode ?? 0}${text === '' ? '' : ` ${text}`}`));
      },
    );
    req.on('error', reject);
    writeBytes(req, bytes, 256 * 1024);
  });
}
