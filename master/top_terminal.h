// The terminal of `wraith top` (master/top.cc): an interactive run reads keys without Enter
// or echo and hides the cursor, and gives both back on every way out (a return, q,
// SIGINT/SIGTERM/SIGHUP, and around a Ctrl-Z stop); a batch run writes plain screens.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace wraith::top {

// The size a screen is fitted to.
struct Layout {
    bool fit = false; // interactive: cut to the terminal; batch: every row, whole lines
    size_t width = 80;
    size_t height = 24;
};

class Terminal {
public:
    // `interactive`: standard output is a terminal and --batch was not given.
    explicit Terminal(bool interactive);
    ~Terminal() { restore(); }
    Terminal(const Terminal&) = delete;
    Terminal& operator=(const Terminal&) = delete;

    // Gives the terminal back; later output (an error) is ordinary text below the screen.
    void restore();
    bool interactive() const { return interactive_; }
    bool keys() const; // standard input is a terminal we read keys from
    // The size to fit a screen to; 80x24 when it cannot be known.
    Layout layout() const;
    // Interactive: over the last screen (home, each line cleared to its end, the rest below
    // cleared). Batch: plain lines, a blank line between screens.
    void draw(const std::vector<std::string>& lines);

private:
    bool interactive_;
    bool drawn_ = false;
};

double monotonic_seconds();

enum class Wake { time, quit, redraw, stop };

// Sleeps until `deadline` (monotonic seconds), reading keys meanwhile when `*keys` (cleared
// when standard input ends).
Wake wait_until(double deadline, bool* keys);

// The signal that ended the run (SIGINT, SIGTERM, SIGHUP), or 0.
int stop_signal();

} // namespace wraith::top
