#include "master/top_terminal.h"

#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <ctime>

namespace wraith::top {

namespace {

volatile sig_atomic_t g_stop_signal = 0; // the signal that ends the run
volatile sig_atomic_t g_redraw = 0;      // the window changed size or the run continued
volatile sig_atomic_t g_raw = 0;         // the terminal is in our mode (g_saved restores it)
struct termios g_saved;
struct termios g_raw_mode;

constexpr char kHideCursor[] = "\x1b[?25l";
constexpr char kShowCursor[] = "\x1b[?25h";

// Async-signal-safe: write and tcsetattr only.
void leave_raw_mode() {
    if (g_raw) {
        tcsetattr(STDIN_FILENO, TCSANOW, &g_saved);
        g_raw = 0;
    }
    ssize_t ignored = write(STDOUT_FILENO, kShowCursor, sizeof(kShowCursor) - 1);
    (void)ignored;
}

void enter_raw_mode(bool keys) {
    if (keys && tcsetattr(STDIN_FILENO, TCSANOW, &g_raw_mode) == 0)
        g_raw = 1;
    ssize_t ignored = write(STDOUT_FILENO, kHideCursor, sizeof(kHideCursor) - 1);
    (void)ignored;
}

bool g_keys = false; // stdin is a terminal we read keys from

void on_stop_signal(int sig) {
    g_stop_signal = sig;
}

void on_winch(int) {
    g_redraw = 1;
}

void on_continue(int) {
    enter_raw_mode(g_keys);
    g_redraw = 1;
}

// Ctrl-Z: give the shell its terminal back, stop, and take it again on SIGCONT.
void on_tstp(int) {
    const int saved_errno = errno;
    leave_raw_mode();
    signal(SIGTSTP, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTSTP);
    sigprocmask(SIG_UNBLOCK, &set, nullptr);
    raise(SIGTSTP);
    // Continued, or never stopped (an orphaned process group ignores SIGTSTP): the terminal is
    // ours again either way. Catch the next Ctrl-Z.
    enter_raw_mode(g_keys);
    g_redraw = 1;
    struct sigaction sa {};
    sa.sa_handler = on_tstp;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTSTP, &sa, nullptr);
    errno = saved_errno;
}

void write_all(const std::string& s) {
    size_t done = 0;
    while (done < s.size()) {
        ssize_t n = write(STDOUT_FILENO, s.data() + done, s.size() - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        done += static_cast<size_t>(n);
    }
}

} // namespace

Terminal::Terminal(bool interactive) : interactive_(interactive) {
    if (!interactive_)
        return;
    g_keys = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &g_saved) == 0;
    if (g_keys) {
        g_raw_mode = g_saved;
        g_raw_mode.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO); // ISIG stays: Ctrl-C
        g_raw_mode.c_cc[VMIN] = 0;
        g_raw_mode.c_cc[VTIME] = 0;
    }
    // No SA_RESTART: a signal interrupts poll() and the control socket's read at once.
    struct sigaction sa {};
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop_signal;
    for (int sig : {SIGINT, SIGTERM, SIGHUP})
        sigaction(sig, &sa, nullptr);
    sa.sa_handler = on_winch;
    sigaction(SIGWINCH, &sa, nullptr);
    sa.sa_handler = on_continue;
    sigaction(SIGCONT, &sa, nullptr);
    sa.sa_handler = on_tstp;
    sigaction(SIGTSTP, &sa, nullptr);
    enter_raw_mode(g_keys);
}

void Terminal::restore() {
    if (!interactive_)
        return;
    signal(SIGTSTP, SIG_DFL);
    signal(SIGCONT, SIG_DFL);
    leave_raw_mode();
    if (drawn_) {
        ssize_t ignored = write(STDOUT_FILENO, "\n", 1);
        (void)ignored;
    }
    interactive_ = false;
}

bool Terminal::keys() const {
    return g_keys;
}

Layout Terminal::layout() const {
    Layout l;
    l.fit = interactive_;
    struct winsize ws {};
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
        l.width = ws.ws_col;
        l.height = ws.ws_row;
    }
    return l;
}

void Terminal::draw(const std::vector<std::string>& lines) {
    std::string out;
    if (interactive_) {
        out = drawn_ ? "\x1b[H" : "\x1b[H\x1b[2J";
        for (size_t i = 0; i < lines.size(); ++i)
            out += lines[i] + "\x1b[K" + (i + 1 < lines.size() ? "\n" : "");
        out += "\x1b[J";
    } else {
        if (drawn_)
            out += "\n";
        for (const std::string& l : lines)
            out += l + "\n";
    }
    drawn_ = true;
    write_all(out);
}

int stop_signal() {
    return g_stop_signal;
}

double monotonic_seconds() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

Wake wait_until(double deadline, bool* keys) {
    for (;;) {
        if (g_stop_signal)
            return Wake::stop;
        if (g_redraw) {
            g_redraw = 0;
            return Wake::redraw;
        }
        const double left = deadline - monotonic_seconds();
        if (left <= 0)
            return Wake::time;
        const int ms = static_cast<int>(std::min(std::ceil(left * 1000), 1000.0));
        struct pollfd in {
            STDIN_FILENO, POLLIN, 0
        };
        if (poll(&in, *keys ? 1 : 0, ms) <= 0 || !*keys)
            continue;
        char buf[64];
        const ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
            *keys = false; // no more keys: Ctrl-C still quits
            continue;
        }
        for (ssize_t i = 0; i < n; ++i)
            if (buf[i] == 'q' || buf[i] == 'Q')
                return Wake::quit;
    }
}

} // namespace wraith::top
