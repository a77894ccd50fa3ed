/** A real nginx serving a directory on 127.0.0.1:<free port>, for binary-cache tests and benches. */
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';

export interface Nginx {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function startNginx(root: string): Promise<Nginx> {
  const dir = await mkdtemp(join(tmpdir(), 'lazystore-nginx-'));
  const port = await freePort();
  const conf = `
user root;
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  sendfile on;
  server {
    listen 127.0.0.1:${port};
    root ${root};
    location / { }
  }
}
`;
  await writeFile(join(dir, 'nginx.conf'), conf);
  const proc: ResultPromise = execa('nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir], { reject: false, stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      const res = await fetch(`${url}/`, { method: 'HEAD' });
      await res.body?.cancel();
      break;
    } catch (e) {
      if (i > 100 || proc.exitCode !== null) {
        const log = await readFile(join(dir, 'error.log'), 'utf8').catch(() => '');
        proc.kill();
        throw new Error(`nginx did not start on ${port}: ${log}`, { cause: e });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    url,
    port,
    async stop() {
      proc.kill('SIGQUIT');
      await proc;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
