// "Copy link" on the share-created page, as progressive enhancement: without it the link is
// in a read-only field to select and copy by hand. A module file (the CSP forbids inline script).
const button = document.getElementById("copy-link");

if (button && navigator.clipboard) {
  const field = document.getElementById(button.dataset.copy);
  const status = document.getElementById("copy-status");
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(field.value);
      status.textContent = "Link copied.";
    } catch {
      field.select();
      status.textContent = "Could not copy: the link is selected, press Ctrl+C.";
    }
  });
  button.hidden = false;
}
