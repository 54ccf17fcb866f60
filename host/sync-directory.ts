/**
 * fsync a directory, so that a file created, linked or renamed in it survives
 * a power cut: POSIX leaves a new directory entry to the directory's own
 * fsync (fsync(2): "does not necessarily ensure that the entry in the
 * directory containing the file has also reached disk").
 */
import { closeSync, fsyncSync, openSync } from "node:fs";

export function syncDirectory(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
