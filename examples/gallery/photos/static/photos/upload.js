// Drag and drop for the upload form. The form works without this script:
// the drop zone is a label around an ordinary <input type="file" multiple>.
// Here dropped files are put into that input, and a preview of each is shown.
"use strict";

(function () {
  const zone = document.querySelector("[data-dropzone]");
  if (!zone) return;
  const input = zone.querySelector('input[type="file"]');
  const picked = document.querySelector("[data-picked]");
  let previews = [];

  function showPicked() {
    previews.forEach(URL.revokeObjectURL);
    previews = [];
    picked.replaceChildren(
      ...[...input.files].map((file) => {
        const item = document.createElement("li");
        if (file.type.startsWith("image/")) {
          const img = document.createElement("img");
          img.alt = "";
          img.src = URL.createObjectURL(file);
          previews.push(img.src);
          item.append(img);
        }
        const label = document.createElement("span");
        label.textContent = `${file.name} · ${Math.max(1, Math.round(file.size / 1024))} KB`;
        item.append(label);
        return item;
      })
    );
  }

  ["dragenter", "dragover"].forEach((type) =>
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("is-dragging");
    })
  );
  ["dragleave", "drop"].forEach((type) =>
    zone.addEventListener(type, () => zone.classList.remove("is-dragging"))
  );
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    const images = [...event.dataTransfer.files].filter((f) => f.type.startsWith("image/"));
    const transfer = new DataTransfer();
    images.forEach((file) => transfer.items.add(file));
    input.files = transfer.files;
    showPicked();
  });
  input.addEventListener("change", showPicked);
})();
