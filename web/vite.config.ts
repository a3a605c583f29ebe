// The build writes into the Rust crate that embeds it (crates/server/ui, committed): cargo
// never needs Node. Hashed file names let the daemon cache assets as immutable.
import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

export default defineConfig({
  plugins: [preact()],
  base: '/',
  build: {
    outDir: '../crates/server/ui',
    emptyOutDir: true,
    assetsDir: 'assets',
    // No inline script (the CSP forbids it) and no polyfill for a browser without modulepreload.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    target: 'es2022',
    sourcemap: false,
  },
  // `vite preview` against a daemon: the same CSP as crates/server/src/http/ui.rs sends.
  preview: {
    headers: {
      'Content-Security-Policy':
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    },
  },
  server: {
    // `npm run dev` against a daemon on :8080 (HOSTPLANE_URL): same origin for the cookie.
    proxy: { '/api': { target: process.env.HOSTPLANE_URL ?? 'http://127.0.0.1:8080', changeOrigin: false } },
  },
});
