// jsdom has no DragEvent, which Lumino's drag and drop (imported by its widgets) extends.
if (typeof globalThis.DragEvent === 'undefined') {
  globalThis.DragEvent = class DragEvent extends MouseEvent {};
}
