import { defineConfig } from "vite";

// Relative asset URLs: the same build is served at / by the local stack and from the site's bucket.
export default defineConfig({
  base: "./",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    // Every byte comes from this build: no CDN at run time.
    assetsInlineLimit: 0,
  },
  // `npm run dev` (live reload while editing the console): the API of a running `make run`, same-origin
  // through the dev server's proxy, so the committed config.json holds there too.
  server: {
    proxy: { "/api": { target: "http://127.0.0.1:8080", changeOrigin: true } },
  },
});
