// pixclass: save the image URLs of a search results page to urls.txt.
// Paste into the browser console (F12) on a results page, scrolled as far as you want,
// then run: pixclass download urls.txt --out data/<class>
(() => {
  const imageUrls = (doc, base) => {
    const urls = new Set();
    const add = (u) => {
      try {
        const url = new URL(u, base);
        if (url.protocol === "http:" || url.protocol === "https:") { urls.add(url.href); }
      } catch (e) { /* not a URL */ }
    };
    // Bing images: each result is <a class="iusc" m='{"murl": "<full image>", ...}'>.
    doc.querySelectorAll("a.iusc[m]").forEach((a) => {
      try { add(JSON.parse(a.getAttribute("m")).murl); } catch (e) { /* malformed */ }
    });
    // Result links that carry the full image in a parameter, or point at an image file.
    doc.querySelectorAll("a[href]").forEach((a) => {
      const m = /[?&](imgurl|mediaurl)=([^&]+)/.exec(a.href);
      if (m) { add(decodeURIComponent(m[2])); }
      else if (/\.(jpe?g|png|gif|webp|bmp)$/i.test(a.pathname || "")) { add(a.href); }
    });
    // Nothing found: fall back to the pictures shown (thumbnails at least 100 px).
    if (urls.size === 0) {
      doc.querySelectorAll("img").forEach((img) => {
        if (img.naturalWidth >= 100 && img.naturalHeight >= 100) { add(img.currentSrc || img.src); }
      });
    }
    return [...urls];
  };
  if (typeof document === "undefined") { module.exports = imageUrls; return; } /* node: tests */
  const urls = imageUrls(document, location.href);
  const blob = new Blob([urls.join("\n") + "\n"], { type: "text/plain" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = "urls.txt";
  document.body.appendChild(link);
  link.click();
  link.remove();
  console.log("pixclass: saved " + urls.length + " image URLs to urls.txt");
})();
