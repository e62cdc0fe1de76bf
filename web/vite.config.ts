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
});
