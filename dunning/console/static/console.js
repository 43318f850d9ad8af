// Progressive enhancement only: every page works without this file.
// The policy editor: a click on a problem selects its line in the text box, and the
// first problem's line is selected when the page opens.
function selectLine(box, number) {
  const lines = box.value.split("\n");
  const n = Math.min(Math.max(number, 1), lines.length) - 1;
  let start = 0;
  for (let i = 0; i < n; i++) start += lines[i].length + 1;
  box.focus({ preventScroll: true });
  box.setSelectionRange(start, start + lines[n].length);
  const height = box.scrollHeight / Math.max(lines.length, 1);
  box.scrollTop = Math.max(0, n * height - box.clientHeight / 3);
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-line]");
  const box = document.querySelector("textarea.policy");
  if (!link || !box) return;
  event.preventDefault();
  selectLine(box, Number(link.dataset.line));
});

document.addEventListener("DOMContentLoaded", () => {
  const box = document.querySelector("textarea.policy");
  const first = document.querySelector("[data-problem-line]");
  if (box && first) selectLine(box, Number(first.dataset.problemLine));
});
