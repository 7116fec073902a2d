# cmake -DFROM=<prefix> -DTO=<prefix> -P copy_corpus.cmake: copies a corpus' .bin and .idx.
foreach(ext bin idx)
  file(COPY_FILE ${FROM}.${ext} ${TO}.${ext})
endforeach()
