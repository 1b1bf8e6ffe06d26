import { defineConfig } from "vite";

// Plain files under dist/, which the api serves at / (CHAT_WEB_DIR). No inline
// scripts or styles: the page's content security policy allows its own files only.
export default defineConfig({
  build: { outDir: "dist", emptyOutDir: true, assetsInlineLimit: 0, modulePreload: { polyfill: false } },
});
